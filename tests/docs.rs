//! Documentation checks: every public Nix function has a section in docs/API.md, and every
//! argument of it a comment right above its formal.

use std::path::Path;

fn public_nix_files() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("nix");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_stem()?.to_str()?.to_owned();
            let internal = name.starts_with("internal")
                || ["default", "overlay", "package", "toolbox"].contains(&name.as_str());
            (p.extension()? == "nix" && !internal)
                .then(|| (name, std::fs::read_to_string(&p).unwrap()))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_public_function_has_an_api_section() {
    let api =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/API.md")).unwrap();
    let files = public_nix_files();
    assert!(
        files.len() >= 2,
        "expected streamLayeredImage and buildLayeredImage"
    );
    for (name, _) in files {
        assert!(
            api.contains(&format!("\n## {name}\n")),
            "docs/API.md has no `## {name}` section"
        );
    }
}

#[test]
fn every_argument_has_a_comment_above_it() {
    for (name, text) in public_nix_files() {
        // The user-facing argument set opens with a `{` on a line of its own; the
        // dependencies the library passes in are a one-line pattern above it.
        let lines: Vec<&str> = text.lines().collect();
        let Some(start) = lines.iter().position(|l| l.trim() == "{") else {
            // A function of one formal (`images: ...`, `args: buildImage (args // ...)`)
            // documents it right above; a value (shadowSetup) has no formal.
            let formal = lines.iter().position(|l| {
                l.strip_suffix(':')
                    .is_some_and(|id| !id.is_empty() && id.chars().all(char::is_alphanumeric))
                    || l.starts_with("args: ")
            });
            if let Some(formal) = formal {
                assert!(
                    lines[formal - 1].trim().starts_with('#'),
                    "nix/{name}.nix: `{}` has no comment right above it",
                    lines[formal]
                );
            }
            continue;
        };
        let end = lines[start..]
            .iter()
            .position(|l| l.starts_with('}'))
            .expect("end of arguments")
            + start;
        for i in start + 1..end {
            let line = lines[i].trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            assert!(
                lines[i - 1].trim().starts_with('#'),
                "nix/{name}.nix: argument `{line}` has no comment right above it"
            );
        }
    }
}
