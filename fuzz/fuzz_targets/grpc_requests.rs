//! RocketMQ 5.x gRPC requests as a client sends them — sends, receives, Settings, acks,
//! receipt handles, `authorization` headers — through every check of the gRPC front end
//! (`shardmq::fronts::grpc::fuzzing`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| shardmq::fronts::grpc::fuzzing::grpc_request(data));
