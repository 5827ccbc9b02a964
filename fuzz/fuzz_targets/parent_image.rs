//! Fuzzes the parent-image reader: any bytes as a (possibly compressed) archive must give an
//! image or an error, never a panic, and never a file outside the output and scratch dirs;
//! the scratch files go however the import ends, and a failed import leaves no output. The
//! expansion limit is low so that an input expanding far costs the fuzzer little.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use strata::parent::{import, Limits};
use strata::progress::Progress;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("strata-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out: PathBuf = dir.join("out");
    let limits = Limits::at_most(64 << 20);
    let result = import(data, None, &out, &dir.join("scratch"), limits, &Progress::quiet());
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(name == "out" && result.is_ok(), "left {name:?} after {result:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
});
