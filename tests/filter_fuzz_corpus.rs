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

/// Seeded mutants of every corpus input (`shardmq_protocol::mutate`; `SHARDMQ_FUZZ_SEED` picks
/// others): the filter target fuzzed briefly in every test run.
#[test]
fn the_filter_target_survives_a_brief_seeded_fuzz() {
    use shardmq_protocol::mutate::{mutant, seed_from_env};
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/filter_expression");
    let seed = seed_from_env(0x5eed_0002);
    let mut inputs: Vec<Vec<u8>> = SEEDS.iter().map(|s| s.as_bytes().to_vec()).collect();
    for entry in std::fs::read_dir(&dir).unwrap() {
        inputs.push(std::fs::read(entry.unwrap().path()).unwrap());
    }
    for (i, input) in inputs.iter().enumerate() {
        for n in 0..8 {
            let bytes = mutant(input, seed, n, 4096);
            let run = std::panic::catch_unwind(|| filter_expression(&bytes));
            assert!(
                run.is_ok(),
                "mutant {n} of input {i} under SHARDMQ_FUZZ_SEED={seed} panicked"
            );
        }
    }
}
