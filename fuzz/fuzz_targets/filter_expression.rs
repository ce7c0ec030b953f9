//! Subscription expressions as a client sends them, tag and SQL92: parsed, and evaluated when
//! they parse (`shardmq::core::filter::fuzzing`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| shardmq::core::filter::fuzzing::filter_expression(data));
