//! The CSV source's decoding path, run on arbitrary file contents in all three modes, which
//! must agree (the check is `crates/source/tests/modes/check.rs`, which a proptest also runs
//! in the test suite).
//!
//! The first byte chooses the options (header, separator, batch size, corrupt-record
//! column); the rest is the file.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/source/tests/modes/check.rs"]
mod check;

fuzz_target!(|data: &[u8]| {
    let Some((&options, file)) = data.split_first() else {
        return;
    };
    if let Err(disagreement) = check::three_modes_agree(options, file) {
        panic!("{disagreement}");
    }
});
