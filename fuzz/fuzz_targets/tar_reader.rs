//! Fuzzes the reader of tars strata does not trust (`tar::reader`): any bytes give entries
//! or an error, never a panic; an entry's data is exactly its size, none for header-only
//! types, and entries come in stream order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Read;
use strata::tar::reader::TarReader;

fuzz_target!(|data: &[u8]| {
    let mut tar = TarReader::new(data);
    let mut last = None;
    while let Ok(Some(entry)) = tar.next_entry() {
        assert!(last < Some(entry.offset), "{last:?} then {}", entry.offset);
        last = Some(entry.offset);
        assert!(entry.size <= entry.declared_size);
        assert!(!entry.entry_type.is_header_only() || entry.size == 0);
        let mut bytes = Vec::new();
        match tar.data().read_to_end(&mut bytes) {
            Ok(n) => assert_eq!(n as u64, entry.size),
            Err(_) => break,
        }
    }
});
