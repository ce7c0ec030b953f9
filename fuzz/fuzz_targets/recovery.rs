//! Arbitrary bytes as a shard's segment, index and checkpoint; the store opened on them, read,
//! appended to and closed (`shardmq_shards::fuzzing::recovery`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| shardmq_shards::fuzzing::recovery(data));
