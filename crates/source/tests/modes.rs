//! The three modes against each other, on arbitrary files made of the bytes that make CSV
//! hard; the fuzz target `fuzz/fuzz_targets/csv_source.rs` runs the same check on any bytes,
//! with libFuzzer.

use proptest::prelude::*;

#[path = "modes/check.rs"]
mod check;

/// A file: pieces of values, separators, quotes, escapes, spaces and line breaks.
fn file() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop::sample::select(vec![
        &b"a"[..],
        b",",
        b";",
        b"\"",
        b"\\",
        b" ",
        b"\t",
        b"\n",
        b"\r\n",
        b"\r",
        b"1",
        b"-7",
        b"2.5",
        b"1e3",
        b"NaN",
        b"true",
        b"2024-01-05",
        b" 10:00:00",
        b"Z",
        b"12,345.67",
        b"\xff",
        b"\xEF\xBB\xBF",
    ]);
    prop::collection::vec(piece, 0..60).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_three_modes_agree_on_what_is_malformed(options in any::<u8>(), file in file()) {
        let agreed = check::three_modes_agree(options, &file);
        prop_assert!(agreed.is_ok(), "{:?}\n{}", agreed, String::from_utf8_lossy(&file));
    }
}
