//! Fuzzes the parent-image reader: any bytes as a (possibly compressed) archive must give an
//! image or an error, never a panic, and never a file outside the output and scratch dirs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use strata::parent::import;
use strata::progress::Progress;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("strata-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out: PathBuf = dir.join("out");
    let _ = import(data, None, &out, &dir.join("scratch"), &Progress::quiet());
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(name == "out" || name == "scratch", "wrote {name:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
});
