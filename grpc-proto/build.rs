//! Generates `apache.rocketmq.v2` from the vendored protos with protox (a protobuf compiler in
//! Rust), so the build needs no `protoc` on the machine.

fn main() {
    let protos = [
        "proto/apache/rocketmq/v2/definition.proto",
        "proto/apache/rocketmq/v2/service.proto",
    ];
    for proto in &protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["proto"]).expect("the vendored protos compile");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)
        .expect("tonic code generation");
}
