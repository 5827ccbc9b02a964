//! End-to-end tests: images built by `nix-build` (sandbox on) from the library in its
//! no-nixpkgs form, used by real consumers: docker, podman, containerd, skopeo, buildah, umoci.
//!
//! Needs root, Nix, docker.io, podman, runc, skopeo and buildah (`scripts/test` installs them).
//! Without them the tests are skipped, unless `STRATA_E2E=1` makes them required (as in CI).
//! `cargo test --test e2e -- NAME...` runs only the checks whose names contain a NAME.
//!
//! The same binary runs against both generations of consumers: on the host (Debian 12's) and
//! inside the Debian 13 root of `scripts/debian13` (`STRATA_E2E_PREBUILT=1`: the helper was
//! bootstrapped on the host, where cargo is). `consumers` says which versions a run has and
//! what each is known not to do; a full run writes its chart (`build/e2e/`).
//!
//! Each area has a file of its own (`stream`, `archives`, `build_image`, `layering`, `parent`,
//! `registry`, `registry_trust`, `fault_proxy`, `partial_pull`, `library`, `with_nixpkgs`,
//! `supply_chain`, `consumer_chart`),
//! one function per check; this file starts the daemons and runs the checks in [`CHECKS`]
//! order.

#[path = "../util/mod.rs"]
mod util;

mod archives;
mod build_image;
mod consumer_chart;
mod consumers;
mod fault_proxy;
mod layering;
mod library;
mod parent;
mod partial_pull;
mod registry;
mod registry_trust;
mod stream;
mod supply_chain;
mod support;
mod with_nixpkgs;

use consumers::{chart_dir, Chart, Consumer, Consumers, Feature};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use support::*;
use util::*;

/// What every check gets: the Nix builder of `tests/nix/images.nix`, a Docker daemon and a
/// podman store of this run, and its scratch directory.
struct Context {
    /// Builds the test images (each once).
    nix: Nix,
    /// The run's Docker daemon.
    docker: Dockerd,
    /// The run's podman store.
    podman: Podman,
    /// The scratch directory, removed after the run.
    dir: PathBuf,
    /// The versions of this run's consumers.
    consumers: Consumers,
    /// What the checks found each consumer does.
    chart: Chart,
}

/// A check: `Err` carries everything needed to debug it.
type CheckFn = fn(&mut Context) -> Check;

/// Every check, in the order they run.
const CHECKS: &[(&str, CheckFn)] = &[
    (
        "stream_docker_load_and_run",
        stream::stream_docker_load_and_run,
    ),
    (
        "stream_podman_load_and_run",
        stream::stream_podman_load_and_run,
    ),
    (
        "skopeo_inspect_shows_config_arch_and_layers",
        stream::skopeo_inspect_shows_config_arch_and_layers,
    ),
    (
        "compressed_layers_in_archives",
        archives::compressed_layers_in_archives,
    ),
    (
        "archive_is_an_oci_layout_skopeo_and_umoci_read_it",
        archives::archive_is_an_oci_layout_skopeo_and_umoci_read_it,
    ),
    (
        "layers_are_deterministic_relative_and_hashed",
        stream::layers_are_deterministic_relative_and_hashed,
    ),
    (
        "build_layered_image_gz_docker_and_podman",
        archives::build_layered_image_gz_docker_and_podman,
    ),
    (
        "build_layered_image_zstd_loads",
        archives::build_layered_image_zstd_loads,
    ),
    (
        "layered_web_server_serves_like_nixpkgs_nginx",
        archives::layered_web_server_serves_like_nixpkgs_nginx,
    ),
    (
        "image_tag_defaults_to_plan_hash",
        stream::image_tag_defaults_to_plan_hash,
    ),
    (
        "tarsum_matches_dockers_go_code",
        build_image::tarsum_matches_dockers_go_code,
    ),
    (
        "build_image_legacy_layout_docker_and_podman",
        build_image::build_image_legacy_layout_docker_and_podman,
    ),
    (
        "push_uploads_only_what_the_registry_lacks",
        registry::push_uploads_only_what_the_registry_lacks,
    ),
    (
        "registries_with_tls_auth_and_credential_helpers",
        registry_trust::registries_with_tls_auth_and_credential_helpers,
    ),
    (
        "registry_faults_are_retried_or_reported",
        registry_trust::registry_faults_are_retried_or_reported,
    ),
    (
        "partial_pulls_move_only_changed_files",
        partial_pull::partial_pulls_move_only_changed_files,
    ),
    (
        "bad_range_answers_still_pull_correctly",
        partial_pull::bad_range_answers_still_pull_correctly,
    ),
    (
        "pull_image_by_digest_in_nix_build",
        registry::pull_image_by_digest_in_nix_build,
    ),
    (
        "load_sends_only_the_layers_an_engine_lacks",
        stream::load_sends_only_the_layers_an_engine_lacks,
    ),
    (
        "image_index_multi_arch_and_copy_scripts",
        registry::image_index_multi_arch_and_copy_scripts,
    ),
    (
        "nix_build_check_reproducible",
        library::nix_build_check_reproducible,
    ),
    (
        "max_layers_below_2_fails_at_evaluation",
        layering::max_layers_below_2_fails_at_evaluation,
    ),
    (
        "closure_larger_than_max_layers_fills_exactly_max_layers",
        layering::closure_larger_than_max_layers_fills_exactly_max_layers,
    ),
    (
        "non_root_owner_and_store_dir_modes",
        stream::non_root_owner_and_store_dir_modes,
    ),
    (
        "image_without_store_paths",
        stream::image_without_store_paths,
    ),
    (
        "no_store_paths_images_run_only_with_the_store_mounted",
        stream::no_store_paths_images_run_only_with_the_store_mounted,
    ),
    (
        "bare_paths_in_contents_and_store_symlinks",
        stream::bare_paths_in_contents_and_store_symlinks,
    ),
    (
        "registry_prefix_lowercase_name_and_architecture",
        stream::registry_prefix_lowercase_name_and_architecture,
    ),
    (
        "created_now_and_empty_image",
        stream::created_now_and_empty_image,
    ),
    (
        "layers_subcommand_reads_nix_path_info_by_hand",
        layering::layers_subcommand_reads_nix_path_info_by_hand,
    ),
    ("errors_are_one_line", stream::errors_are_one_line),
    (
        "shared_layer_built_once_used_by_two_images",
        layering::shared_layer_built_once_used_by_two_images,
    ),
    (
        "changing_the_app_rebuilds_only_its_derivations",
        layering::changing_the_app_rebuilds_only_its_derivations,
    ),
    (
        "buildlayer_contents_and_split",
        layering::buildlayer_contents_and_split,
    ),
    (
        "per_layer_derivations_give_the_same_layers",
        layering::per_layer_derivations_give_the_same_layers,
    ),
    (
        "default_layering_pushes_only_what_changed",
        layering::default_layering_pushes_only_what_changed,
    ),
    (
        "zstd_chunked_parent_is_read_and_kept",
        parent::zstd_chunked_parent_is_read_and_kept,
    ),
    (
        "image_family_shares_layers_in_the_registry",
        layering::image_family_shares_layers_in_the_registry,
    ),
    (
        "layering_pipeline_gives_nixpkgs_popularity_layers",
        layering::layering_pipeline_gives_nixpkgs_popularity_layers,
    ),
    (
        "record_mismatch_names_layer_and_paths",
        stream::record_mismatch_names_layer_and_paths,
    ),
    (
        "compressed_archives_identical_with_1_and_2_threads",
        archives::compressed_archives_identical_with_1_and_2_threads,
    ),
    (
        "build_image_on_top_of_layered_docker_and_podman",
        build_image::build_image_on_top_of_layered_docker_and_podman,
    ),
    (
        "three_chained_images_upper_layers_win",
        build_image::three_chained_images_upper_layers_win,
    ),
    (
        "run_as_root_and_fake_root_owners_show_in_the_container",
        build_image::run_as_root_and_fake_root_owners_show_in_the_container,
    ),
    (
        "layered_on_top_inherits_env_and_skips_parent_paths",
        parent::layered_on_top_inherits_env_and_skips_parent_paths,
    ),
    (
        "nixpkgs_env_inheritance_layered_children_and_bulk_layers",
        parent::nixpkgs_env_inheritance_layered_children_and_bulk_layers,
    ),
    (
        "parent_from_docker_save_and_hostile_parents",
        parent::parent_from_docker_save_and_hostile_parents,
    ),
    (
        "nix_db_registers_the_closure",
        build_image::nix_db_registers_the_closure,
    ),
    (
        "export_image_flattens_layers_like_docker_export",
        archives::export_image_flattens_layers_like_docker_export,
    ),
    (
        "merge_images_loads_every_image",
        archives::merge_images_loads_every_image,
    ),
    (
        "family_packages_without_nixpkgs",
        library::family_packages_without_nixpkgs,
    ),
    (
        "build_image_without_tag_compressors_prefix_and_arm64",
        build_image::build_image_without_tag_compressors_prefix_and_arm64,
    ),
    (
        "nixpkgs_ports_bulk_on_base_run_as_root_extra_repeated_layers",
        build_image::nixpkgs_ports_bulk_on_base_run_as_root_extra_repeated_layers,
    ),
    (
        "same_outputs_as_the_other_generation",
        library::same_outputs_as_the_other_generation,
    ),
    ("examples_build_and_run", library::examples_build_and_run),
    (
        "flake_overlay_with_stand_in_nixpkgs",
        library::flake_overlay_with_stand_in_nixpkgs,
    ),
    (
        "nix_shell_images_as_nixpkgs_examples",
        with_nixpkgs::nix_shell_images_as_nixpkgs_examples,
    ),
    (
        "scripts_run_under_stdenv_with_nixpkgs",
        with_nixpkgs::scripts_run_under_stdenv_with_nixpkgs,
    ),
    (
        "nixpkgs_examples_through_the_overlay",
        with_nixpkgs::nixpkgs_examples_through_the_overlay,
    ),
    (
        "nix_inside_images_reads_their_database",
        with_nixpkgs::nix_inside_images_reads_their_database,
    ),
    (
        "sboms_describe_the_exact_closure",
        supply_chain::sboms_describe_the_exact_closure,
    ),
    (
        "pushes_attach_documents_and_signatures",
        supply_chain::pushes_attach_documents_and_signatures,
    ),
    (
        "consumers_take_strata_images",
        consumer_chart::consumers_take_strata_images,
    ),
];

fn main() {
    let required = std::env::var("STRATA_E2E").is_ok_and(|v| v == "1");
    let missing: Vec<&str> = [
        "nix-build",
        "dockerd",
        "docker",
        "podman",
        "skopeo",
        "runc",
        "buildah",
        "ctr",
        "umoci",
        "busybox",
    ]
    .into_iter()
    .filter(|p| !have(p))
    .collect();
    let not_root = !ok(Command::new("id").arg("-u")).is_ok_and(|u| u.trim() == "0");
    if !missing.is_empty() || not_root {
        let why = if not_root {
            "not running as root".to_owned()
        } else {
            format!("missing {}", missing.join(", "))
        };
        eprintln!("e2e: skipped ({why}); scripts/test installs what they need");
        std::process::exit(if required { 1 } else { 0 });
    }
    // Inside the Debian 13 root there is no cargo: scripts/test bootstraps on the host first.
    let prebuilt = std::env::var("STRATA_E2E_PREBUILT").is_ok_and(|v| v == "1");
    if prebuilt && !repo().join("build/bootstrap/helper/bin/strata").exists() {
        eprintln!(
            "e2e: STRATA_E2E_PREBUILT=1 but build/bootstrap has no helper; run scripts/bootstrap"
        );
        std::process::exit(1);
    }
    if prebuilt {
    } else if let Err(e) = ok(Command::new(repo().join("scripts/bootstrap")).stdout(Stdio::null()))
    {
        eprintln!("e2e: scripts/bootstrap failed:\n{e}");
        std::process::exit(1);
    }

    let scratch = Scratch::new();
    // The helper's cache of compressed digests is the run's own, not the user's.
    std::env::set_var("STRATA_CACHE_DIR", scratch.0.join("strata-cache"));
    let mut suite = Suite::from_args();
    let nix = Nix::new();
    let docker = match Dockerd::start(&scratch.0) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("e2e: {e}");
            std::process::exit(1);
        }
    };
    let podman = Podman::new(&scratch.0);
    let dir = scratch.0.clone();
    let consumers = Consumers::detect(&docker);
    println!("e2e: consumers of {}", consumers.describe());
    let mut ctx = Context {
        nix,
        docker,
        podman,
        dir,
        consumers,
        chart: Chart::default(),
    };
    for (name, check) in CHECKS {
        suite.check(name, || check(&mut ctx));
    }
    // A chart is written only by a run of every check: a partial one would show cells of
    // checks that did not run as empty.
    if suite.runs_all() {
        match ctx.chart.write(&ctx.consumers) {
            Ok(_) => println!(
                "e2e: chart of {} written to {}",
                ctx.consumers.generation,
                chart_dir().display()
            ),
            Err(e) => println!("e2e: cannot write the chart: {e}"),
        }
    }
    let passed = suite.finish();
    drop(ctx);
    drop(scratch);
    std::process::exit(if passed { 0 } else { 1 });
}
