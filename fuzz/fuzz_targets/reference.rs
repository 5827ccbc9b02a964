//! Fuzzes the image reference parser: any text gives a reference or a one-line error, never
//! a panic; a reference printed and parsed again is the same reference, and its repository
//! never leaves `/v2/` (`cargo +nightly fuzz run reference`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata::registry::reference::Reference;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Reference::parse(text) {
        Ok(r) => {
            let again = Reference::parse(&r.to_string()).expect("a printed reference parses");
            assert_eq!(
                (&again.host, &again.repository, &again.reference),
                (&r.host, &r.repository, &r.reference)
            );
            assert!(!r.repository.split('/').any(|p| p.is_empty() || p == ".."));
        }
        Err(e) => assert!(!e.to_string().contains('\n')),
    }
});
