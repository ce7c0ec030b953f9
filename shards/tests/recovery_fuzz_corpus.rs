//! The recovery fuzz target's check (`shardmq_shards::fuzzing::recovery`) over its committed
//! corpus (`fuzz/corpus/recovery`) and over seeds made from a real store's files, on stable, in
//! every test run. `SHARDMQ_WRITE_SEEDS=1 cargo test -p shardmq-shards --test
//! recovery_fuzz_corpus` writes the seeds into the corpus (what `cargo fuzz run recovery`
//! starts from).

use std::path::PathBuf;

use shardmq_shards::fuzzing::recovery;
use shardmq_shards::{FlushMode, ShardStore, StoreConfig};

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/recovery")
}

/// A store's own segment and queue (1, 0) index after `batches` appends.
fn real_files(batches: u32) -> (Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let store_dir = path.clone();
    glommio::LocalExecutorBuilder::default()
        .io_memory(2 << 20)
        .spawn(move || async move {
            let mut config = StoreConfig::new(0, store_dir);
            config.segment_bytes = 1 << 20;
            config.write_buffer_bytes = 4096;
            config.write_behind_buffers = 1;
            config.hot_tail_bytes = 32 * 1024;
            config.flush = FlushMode::Sync;
            let store = ShardStore::open(config, None).await.unwrap();
            for seq in 0..batches {
                let records: Vec<_> = (0..3)
                    .map(|i| shardmq_protocol::batch::Record {
                        keys: vec![format!("k{seq}-{i}")],
                        tags: if i == 0 { "a".into() } else { String::new() },
                        payload: vec![seq as u8; 40 + i * 13],
                        ..Default::default()
                    })
                    .collect();
                let bytes = shardmq_protocol::batch::encode_batch(&records);
                let batch =
                    shardmq_protocol::ValidatedBatch::new(bytes::BytesMut::from(&bytes[..]))
                        .unwrap();
                let outcome = store.append(1, 0, batch).await.unwrap();
                store.wait_synced(outcome.end).await.unwrap();
            }
            store.close().await.unwrap();
        })
        .unwrap()
        .join()
        .unwrap();
    let segment = std::fs::read(path.join("log/00000000000000000000.log")).unwrap();
    let index = std::fs::read(path.join("index/1-0.idx")).unwrap_or_default();
    (segment, index)
}

fn input(flags: u8, segment: &[u8], index: &[u8]) -> Vec<u8> {
    let mut out = vec![flags];
    out.extend_from_slice(&(segment.len() as u32).to_le_bytes());
    out.extend_from_slice(segment);
    out.extend_from_slice(index);
    out
}

fn seeds() -> Vec<Vec<u8>> {
    let (segment, index) = real_files(20);
    let entries = index.get(4096..).unwrap_or_default();
    let mut flipped = segment.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    let mut zeroed_tail = segment.clone();
    let cut = zeroed_tail.len() * 3 / 4;
    zeroed_tail[cut..].fill(0);
    vec![
        input(0, &segment, &index),
        input(2, &segment, &index),
        input(1 | 2, &segment, entries),
        input(0, &segment, &[]),
        input(0, &segment[..segment.len() - 7], &index),
        input(2, &flipped, &index),
        input(1 | 2, &zeroed_tail, entries),
        input(1, &[], entries),
        vec![3],
        vec![],
    ]
}

#[test]
fn recovery_survives_its_seeds_and_corpus() {
    let seeds = seeds();
    if std::env::var_os("SHARDMQ_WRITE_SEEDS").is_some() {
        std::fs::create_dir_all(corpus()).unwrap();
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(corpus().join(format!("seed-{i:02}")), seed).unwrap();
        }
    }
    for seed in &seeds {
        recovery(seed);
    }
    let mut ran = 0;
    for entry in std::fs::read_dir(corpus()).into_iter().flatten() {
        recovery(&std::fs::read(entry.unwrap().path()).unwrap());
        ran += 1;
    }
    assert!(
        ran >= seeds.len(),
        "the committed corpus is missing ({ran} inputs)"
    );
}

/// Seeded mutants of every corpus input (`shardmq_protocol::mutate`; `SHARDMQ_FUZZ_SEED` picks
/// others): recovery fuzzed briefly in every test run (each run opens a store, so only a few).
#[test]
fn recovery_survives_a_brief_seeded_fuzz() {
    use shardmq_protocol::mutate::{mutant, seed_from_env};
    let seed = seed_from_env(0x5eed_0003);
    let mut inputs = seeds();
    for entry in std::fs::read_dir(corpus()).unwrap() {
        inputs.push(std::fs::read(entry.unwrap().path()).unwrap());
    }
    for (i, input) in inputs.iter().enumerate() {
        for n in 0..3 {
            let bytes = mutant(input, seed, n, 1 << 20);
            let run = std::panic::catch_unwind(|| recovery(&bytes));
            assert!(
                run.is_ok(),
                "mutant {n} of input {i} under SHARDMQ_FUZZ_SEED={seed} panicked"
            );
        }
    }
}
