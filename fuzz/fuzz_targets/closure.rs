//! Fuzzes the readers of what Nix hands a builder: any bytes as a closure file or a
//! structured-attributes file give a closure (sorted, each path once, every path and
//! reference in the store) or a one-line error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata::store::attrs::Attrs;
use strata::store::closure::{Closure, ClosureFormatError};
use strata::store::path::is_store_path;

fn check(result: Result<Closure, ClosureFormatError>) {
    match result {
        Ok(closure) => {
            let paths: Vec<&str> = closure.entries().iter().map(|e| e.path.as_str()).collect();
            assert!(paths.windows(2).all(|w| w[0] < w[1]), "{paths:?}");
            for e in closure.entries() {
                assert!(is_store_path(&e.path));
                assert!(e.references.iter().all(|r| is_store_path(r)));
            }
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "{e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    check(Closure::from_json(&value));
    check(Closure::from_attrs(&value));
    let attrs = Attrs {
        path: ".attrs.json".into(),
        value,
    };
    if let Err(e) = attrs.output("out") {
        assert!(!e.to_string().contains('\n'), "{e}");
    }
});
