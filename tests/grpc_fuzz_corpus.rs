//! The gRPC fuzz target's check (`shardmq::fronts::grpc::fuzzing`) over its committed corpus
//! (`fuzz/corpus/grpc_requests`), the seeds below and seeded mutants of each, on stable in
//! every test run. `SHARDMQ_WRITE_SEEDS=1 cargo test --test grpc_fuzz_corpus` writes the seeds.

use std::path::PathBuf;

use prost::Message as _;
use shardmq::fronts::grpc::fuzzing::grpc_request;
use shardmq_grpc_proto::v2 as pb;

fn tagged(kind: u8, body: Vec<u8>) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend(body);
    out
}

fn resource(name: &str) -> Option<pb::Resource> {
    Some(pb::Resource {
        name: name.into(),
        ..pb::Resource::default()
    })
}

fn seeds() -> Vec<Vec<u8>> {
    let message = pb::Message {
        topic: resource("orders"),
        user_properties: [("a".to_string(), "1".to_string())].into(),
        system_properties: Some(pb::SystemProperties {
            tag: Some("TagA".into()),
            keys: vec!["k1".into()],
            message_id: "0102FC0000000124510B24DD2300000000".into(),
            message_group: Some("g".into()),
            message_type: pb::MessageType::Fifo as i32,
            ..pb::SystemProperties::default()
        }),
        body: b"hello".to_vec(),
    };
    let send = pb::SendMessageRequest {
        messages: vec![message.clone(), message],
    };
    let receive = pb::ReceiveMessageRequest {
        group: resource("cg"),
        message_queue: Some(pb::MessageQueue {
            topic: resource("orders"),
            ..pb::MessageQueue::default()
        }),
        filter_expression: Some(pb::FilterExpression {
            r#type: pb::FilterType::Sql as i32,
            expression: "a > 1".into(),
        }),
        batch_size: 8,
        invisible_duration: Some(prost_types::Duration {
            seconds: 15,
            nanos: 0,
        }),
        ..pb::ReceiveMessageRequest::default()
    };
    let settings = pb::TelemetryCommand {
        status: None,
        command: Some(pb::telemetry_command::Command::Settings(pb::Settings {
            client_type: Some(pb::ClientType::Producer as i32),
            pub_sub: Some(pb::settings::PubSub::Publishing(pb::Publishing::default())),
            ..pb::Settings::default()
        })),
    };
    vec![
        tagged(0, send.encode_to_vec()),
        tagged(1, receive.encode_to_vec()),
        tagged(2, settings.encode_to_vec()),
        tagged(3, b"s1.3.1099511627776.ffffffffffffffff".to_vec()),
        tagged(
            4,
            b"MQv2-HMAC-SHA1 Credential=ak, SignedHeaders=x-mq-date-time, Signature=AB".to_vec(),
        ),
        tagged(5, b"\x0a\x02\x0a\x00".to_vec()),
    ]
}

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/grpc_requests")
}

fn inputs() -> Vec<Vec<u8>> {
    let dir = corpus();
    if std::env::var_os("SHARDMQ_WRITE_SEEDS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in seeds().iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), seed).unwrap();
        }
    }
    let mut all = seeds();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        all.push(std::fs::read(entry.unwrap().path()).unwrap());
    }
    all
}

#[test]
fn the_grpc_corpus_is_checked_without_panics() {
    let all = inputs();
    assert!(all.len() >= 2 * seeds().len(), "the corpus is committed");
    for input in &all {
        grpc_request(input);
    }
}

/// Seeded mutants of every input (`SHARDMQ_FUZZ_SEED` picks others): a brief fuzz per run.
#[test]
fn the_grpc_target_survives_a_brief_seeded_fuzz() {
    use shardmq_protocol::mutate::{mutant, seed_from_env};
    let seed = seed_from_env(0x5eed_0003);
    for (i, input) in inputs().iter().enumerate() {
        for n in 0..16 {
            let bytes = mutant(input, seed, n, 4096);
            let run = std::panic::catch_unwind(|| grpc_request(&bytes));
            assert!(
                run.is_ok(),
                "mutant {n} of input {i} under SHARDMQ_FUZZ_SEED={seed} panicked"
            );
        }
    }
}
