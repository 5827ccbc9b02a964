//! Fuzzes `strata tarsum`'s reader: any bytes, given in any chunks, give sums or an error,
//! never a panic, and the same answer however they are cut (the layer writer feeds it
//! whatever its buffers hold). The first byte picks the chunk size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata::tar::tarsum::TarsumHasher;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, tar)) = data.split_first() else {
        return;
    };
    let whole = {
        let mut h = TarsumHasher::new();
        h.update(tar);
        h.finish()
    };
    let mut h = TarsumHasher::new();
    for chunk in tar.chunks(usize::from(cut).max(1)) {
        h.update(chunk);
    }
    let chunked = h.finish();
    assert_eq!(whole, chunked);
    if let Err(e) = whole {
        assert!(!e.to_string().contains('\n'), "{e}");
    }
});
