//! Nix store path names: the parts layering sorts by and the checks paths must pass.

use std::path::Path;

/// The store directory every path in an image lives under; layers hold it as `nix/store`.
pub const STORE_DIR: &str = "/nix/store";

/// Key that breaks popularity ties the way nixpkgs' `referencesByPopularity` does: the name
/// after the hash first, the `/nix/store/<hash>` part last (so `hello-2.12` sorts by `hello`).
pub fn package_name_key(path: &str) -> String {
    match path.split_once('-') {
        Some((store_and_hash, rest)) => format!("{rest}-{store_and_hash}"),
        None => path.to_owned(),
    }
}

/// The hash part of a store path or store path base name (`abc…` in `/nix/store/abc…-hello`).
pub fn hash_part(path: &str) -> &str {
    let base = path.rsplit('/').next().unwrap_or(path);
    base.split('-').next().unwrap_or(base)
}

/// The name after the hash of a store path (`hello-2.12` of `/nix/store/abc…-hello-2.12`), or
/// `path` itself when it is not a store path.
pub fn name_part(path: &str) -> &str {
    if !is_store_path(path) {
        return path;
    }
    let base = &path[STORE_DIR.len() + 1..];
    base.split_once('-').map_or(base, |(_, name)| name)
}

/// True when `path` is a direct child of the store directory, e.g. `/nix/store/<hash>-name`.
pub fn is_store_path(path: &str) -> bool {
    match path
        .strip_prefix(STORE_DIR)
        .and_then(|r| r.strip_prefix('/'))
    {
        Some(base) => {
            !base.is_empty()
                && !base.contains('/')
                && base != "."
                && base != ".."
                && Path::new(path).is_absolute()
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn name_part_is_what_follows_the_hash() {
        use super::name_part;
        let hash = "0123456789abcdfghijklmnpqrsvwxyz";
        assert_eq!(
            name_part(&format!("/nix/store/{hash}-hello-2.12")),
            "hello-2.12"
        );
        assert_eq!(name_part("/etc/passwd"), "/etc/passwd");
        assert_eq!(name_part(&format!("/nix/store/{hash}")), hash);
    }

    use super::*;

    #[test]
    fn package_name_key_moves_hash_last() {
        assert_eq!(
            package_name_key("/nix/store/abc-hello-2.12"),
            "hello-2.12-/nix/store/abc"
        );
        assert_eq!(package_name_key("/nix/store/abc"), "/nix/store/abc");
    }

    #[test]
    fn hash_part_of_path_and_base_name() {
        assert_eq!(hash_part("/nix/store/abc-hello"), "abc");
        assert_eq!(hash_part("abc-hello"), "abc");
    }

    #[test]
    fn store_path_check() {
        assert!(is_store_path("/nix/store/abc-hello"));
        assert!(!is_store_path("/nix/store/abc-hello/bin"));
        assert!(!is_store_path("/nix/store"));
        assert!(!is_store_path("/nix/store/.."));
        assert!(!is_store_path("/tmp/abc"));
    }
}
