//! Native-protocol bytes as the broker and client decode them: frame headers, envelopes, every
//! message kind's metadata, producer and stored record batches (`shardmq_protocol::fuzzing`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| shardmq_protocol::fuzzing::native(data));
