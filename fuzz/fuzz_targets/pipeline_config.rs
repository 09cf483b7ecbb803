//! Pipeline files: arbitrary text through TOML parsing, layering and validation. Whatever
//! the text, the answer is a validated pipeline or a list of errors, each naming a key path
//! or a place in the file; never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use weir::{PipelineSpec, Registry};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match PipelineSpec::from_toml(&text, "fuzz.toml", "fuzz", &[], &Registry::default()) {
        Ok(spec) => {
            let _ = spec.graph_text();
        }
        Err(errors) => {
            assert!(!errors.errors.is_empty(), "an error with no errors in it");
            let shown = errors.to_string();
            assert!(shown.contains("fuzz.toml"), "no file named in {shown}");
        }
    }
});
