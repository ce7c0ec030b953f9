//! The filter fuzz target's check (`shardmq::core::filter::fuzzing`) over its committed corpus
//! (`fuzz/corpus/filter_expression`) and the seeds below, on stable in every test run.
//! `SHARDMQ_WRITE_SEEDS=1 cargo test --test filter_fuzz_corpus` writes the seeds into the corpus.

use std::path::PathBuf;

use shardmq::core::filter::fuzzing::filter_expression;

const SEEDS: &[&str] = &[
    "a > 0 AND b < 1",
    "TAGS IN ('TagA', 'TagB') OR s = 'text'",
    "a BETWEEN 1 AND 3 AND s IS NOT NULL",
    "NOT (t = TRUE) OR big >= 1.5e3",
    "s LIKE 'te%' ESCAPE '!' AND s NOT LIKE '_x'",
    "TagA || TagB",
    "*",
    "((((a > 1))))",
];

#[test]
fn the_filter_corpus_parses_and_evaluates_without_panics() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/filter_expression");
    if std::env::var_os("SHARDMQ_WRITE_SEEDS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in SEEDS.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), seed).unwrap();
        }
    }
    let mut count = 0;
    for seed in SEEDS {
        filter_expression(seed.as_bytes());
    }
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        filter_expression(&std::fs::read(entry.unwrap().path()).unwrap());
        count += 1;
    }
    assert!(count >= SEEDS.len(), "the corpus is committed");
}
