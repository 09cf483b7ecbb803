//! The CSV source beside Spark 4.3: every case of `tests/spark/record_csv.py`, read by Weir,
//! against Spark's answer recorded in `tests/spark/csv_spark.json` (Spark is not needed to
//! run this). docs/csv.md has the table.

use std::process::Command;

use serde_json::Value;

/// Cases where Weir reads what Spark reads.
const FOLLOWS_SPARK: &[&str] = &[
    "malformed row after a CRLF line",
    "malformed row after an empty line",
    "quote inside an unquoted field",
    "text after a closing quote",
    "doubled quotes, default escape",
    "spaces after a closing quote",
    "backslash in quotes, escape = '\"'",
    "backslash-escaped quote, default escape",
    "DOUBLE: Spark's spellings",
    "DOUBLE: other spellings",
    "DOUBLE: type suffixes",
    "INT with spaces",
    "DECIMAL with spaces",
    "DECIMAL with a grouping comma",
    "a line of only whitespace",
    "DATE spellings",
    "TIMESTAMP spellings",
    "INT out of range",
    "BOOLEAN spellings",
    "too few and too many fields",
    "empty values",
    "a backslash pair in quotes, default escape",
    "spaces then text after a closing quote",
    "quotes at the ends of a quoted value",
    "an unterminated quote",
    "spaces around unquoted values",
    "STRING: spaces and empty quotes",
    "a delimiter at the end of a line",
    "a lone CR ends a line",
    "a header after blank lines",
    "INT: signs, zeros and other forms",
    "BIGINT at its bounds",
    "DOUBLE: Java's forms",
    "DECIMAL: rounding, exponents and precision",
    "BOOLEAN with spaces",
    "DATE: more spellings",
    "TIMESTAMP: zones, fractions and partial times",
    "TIMESTAMP: the time zone option",
];

/// The deliberate differences docs/csv.md explains: each must still differ, so that a change
/// of behaviour shows up here and in the docs together.
const DIFFERS: &[&str] = &[
    // Weir reads a quoted line break as part of the value (Spark's `multiLine = true`).
    "a delimiter and a line break inside quotes",
    // Spark gives a time alone today's date; a replay on another day would read it
    // differently, so Weir refuses it.
    "TIMESTAMP: a time of day alone",
];

#[test]
fn each_csv_case_reads_as_spark_reads_it_or_as_docs_csv_md_says() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/spark/record_csv.py");
    let out = Command::new("python3")
        .arg(script)
        .args(["--weir", env!("CARGO_BIN_EXE_weir"), "--json"])
        .output()
        .expect("python3 with pyarrow (make setup installs them)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut named = Vec::new();
    for result in &results {
        let case = result["case"].as_str().unwrap();
        named.push(case);
        let (spark, weir) = (&result["spark"], &result["weir"]);
        assert!(
            !spark.is_null(),
            "{case}: no recorded Spark answer; run --record"
        );
        if FOLLOWS_SPARK.contains(&case) {
            assert_eq!(
                weir, spark,
                "{case}: Weir (left) differs from Spark (right)"
            );
        } else if DIFFERS.contains(&case) {
            assert_ne!(
                weir, spark,
                "{case} now reads as Spark reads it: move it to FOLLOWS_SPARK and update docs/csv.md"
            );
        } else {
            panic!("{case}: in neither list");
        }
    }
    let listed = FOLLOWS_SPARK.len() + DIFFERS.len();
    assert_eq!(named.len(), listed, "every listed case is run: {named:?}");
}
