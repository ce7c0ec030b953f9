//! The request bodies the broker reads from RocketMQ clients: batches, stored messages, JSON
//! bodies, property strings, message ids (`remoting::fuzzing::bodies`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| shardmq_protocol::remoting::fuzzing::bodies(data));
