//! A remoting frame (without its length prefix) as the broker decodes it: JSON and ROCKETMQ
//! binary headers, typed header reads, strict re-encoding (`remoting::fuzzing::frame`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| shardmq_protocol::remoting::fuzzing::frame(data));
