//! The fuzz targets' checks (`remoting::fuzzing`, `fuzzing`) over their committed corpus
//! (`fuzz/corpus/remoting_frame`, `remoting_bodies`, `native_frame`) and over the seeds below, on
//! stable, in every test run: a crash the fuzzer once found stays fixed once its input is in
//! the corpus. `SHARDMQ_WRITE_SEEDS=1 cargo test -p shardmq-protocol --test fuzz_corpus` writes
//! the seeds into the corpus (what `cargo fuzz run` starts from). Each target is also fuzzed
//! briefly: seeded mutants of every corpus input (`mutate`; `SHARDMQ_FUZZ_SEED` picks other
//! ones, and a failure names the seed, the input and the mutant).

use std::net::SocketAddr;
use std::path::PathBuf;

use shardmq_protocol::remoting::codes::request;
use shardmq_protocol::remoting::stored::StoredMessage;
use shardmq_protocol::remoting::{batch_body, fuzzing, properties, RemotingCommand};

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// A command as the broker reads it: without the length prefix.
fn rest(command: RemotingCommand) -> Vec<u8> {
    command.encode().unwrap()[4..].to_vec()
}

fn frame_seeds() -> Vec<Vec<u8>> {
    let send = RemotingCommand::request(request::SEND_MESSAGE_V2, 7)
        .with_ext("a", "pg")
        .with_ext("b", "orders")
        .with_ext("e", "3")
        .with_ext("h", "0")
        .with_ext("i", properties::encode([("TAGS", "t"), ("KEYS", "k")]))
        .with_body(&b"hello"[..]);
    let pull = RemotingCommand::request(request::PULL_MESSAGE, 8)
        .with_ext("consumerGroup", "g")
        .with_ext("topic", "orders")
        .with_ext("queueId", "0")
        .with_ext("queueOffset", "12")
        .with_ext("sysFlag", "7")
        .with_ext("subscription", "a || b");
    let mut binary = vec![0x01, 0x00, 0x00, 0x29, 0x00, 0x69, 0x00, 0x01, 0xdf];
    for n in [1i32, 0, 0, 20] {
        binary.extend_from_slice(&n.to_be_bytes());
    }
    binary.extend_from_slice(&5i16.to_be_bytes());
    binary.extend_from_slice(b"topic");
    binary.extend_from_slice(&9i32.to_be_bytes());
    binary.extend_from_slice(b"TopicTest");
    let liberal = br#"{"code":"34","language":3,"opaque":"9","flag":0,"version":"401","extFields":{"a":1,"b":true}}"#;
    let mut liberal_frame = (liberal.len() as u32).to_be_bytes().to_vec();
    liberal_frame.extend_from_slice(liberal);
    vec![rest(send), rest(pull), binary, liberal_frame]
}

fn body_seeds() -> Vec<Vec<u8>> {
    let mut batch = Vec::new();
    batch_body::push_entry(&mut batch, 0, b"one", &properties::encode([("KEYS", "k1")]));
    batch_body::push_entry(&mut batch, 0, b"two", "");
    let host: SocketAddr = "127.0.0.1:10911".parse().unwrap();
    let mut stored = Vec::new();
    StoredMessage {
        queue_id: 1,
        flag: 0,
        queue_offset: 5,
        physical_offset: 4096,
        sys_flag: 0,
        born_timestamp: 1,
        born_host: host,
        store_timestamp: 2,
        store_host: host,
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        body: b"payload",
        topic: "orders",
        properties: "TAGS\u{1}t\u{2}",
    }
    .encode_into(&mut stored)
    .unwrap();
    vec![
        batch,
        stored,
        br#"{"clientID":"c@1","consumerDataSet":[{"groupName":"g","consumeType":1,"messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","subscriptionDataSet":[{"topic":"t","subString":"a||b","expressionType":"TAG"}]}],"producerDataSet":[{"groupName":"p"}]}"#.to_vec(),
        br#"{"consumerGroup":"g","clientId":"c@1","mqSet":[{"brokerName":"b-00","queueId":0,"topic":"t"}]}"#.to_vec(),
        br#"{"groupName":"g","consumeEnable":"false","retryMaxTimes":3}"#.to_vec(),
        br#"{"topicConfigSerializeWrapper":{"topicConfigTable":{"t":{"topicName":"t","readQueueNums":4,"writeQueueNums":4,"perm":6}},"dataVersion":{"counter":3}}}"#.to_vec(),
        b"7F00000100002A9F0000000000001000".to_vec(),
    ]
}

fn inputs(target: &str, seeds: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let dir = corpus(target);
    if std::env::var_os("SHARDMQ_WRITE_SEEDS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), seed).unwrap();
        }
    }
    let mut all = seeds;
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        all.push(std::fs::read(entry.unwrap().path()).unwrap());
    }
    all
}

#[test]
fn the_frame_corpus_decodes_without_panics_and_re_encodes_stably() {
    let inputs = inputs("remoting_frame", frame_seeds());
    assert!(
        inputs.len() > frame_seeds().len(),
        "the corpus is committed"
    );
    for input in &inputs {
        fuzzing::frame(input);
    }
}

#[test]
fn the_body_corpus_decodes_without_panics() {
    let inputs = inputs("remoting_bodies", body_seeds());
    assert!(inputs.len() > body_seeds().len(), "the corpus is committed");
    for input in &inputs {
        fuzzing::bodies(input);
    }
}

fn native_seeds() -> Vec<Vec<u8>> {
    use shardmq_protocol::batch::encode_batch;
    use shardmq_protocol::envelope;
    use shardmq_protocol::messages::{CreateTopic, Produce};
    let batch = encode_batch(&[shardmq_protocol::Record {
        tags: "t".into(),
        keys: vec!["k".into()],
        payload: b"payload".to_vec(),
        ..Default::default()
    }])
    .to_vec();
    let create = envelope::encode(&CreateTopic {
        name: "orders".into(),
        queues: 8,
        perm: None,
    })
    .unwrap();
    let mut produce = envelope::encode_prefix(
        &Produce {
            topic: "orders".into(),
            queue_id: 1,
        },
        batch.len(),
    )
    .unwrap();
    produce.extend_from_slice(&batch);
    vec![batch, create, produce]
}

#[test]
fn the_native_corpus_decodes_without_panics() {
    let inputs = inputs("native_frame", native_seeds());
    assert!(
        inputs.len() > native_seeds().len(),
        "the corpus is committed"
    );
    for input in &inputs {
        shardmq_protocol::fuzzing::native(input);
    }
}

/// Mutants of every input per target in each test run.
const MUTANTS_PER_INPUT: u64 = 8;

/// Runs `check` over seeded mutants of `inputs`; a panic names what replays it.
pub fn brief_fuzz(target: &str, inputs: &[Vec<u8>], check: impl Fn(&[u8])) {
    use shardmq_protocol::mutate::{mutant, seed_from_env};
    let seed = seed_from_env(0x5eed_0001);
    for (i, input) in inputs.iter().enumerate() {
        for n in 0..MUTANTS_PER_INPUT {
            let bytes = mutant(input, seed, n, 1 << 20);
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&bytes)));
            if run.is_err() {
                panic!("{target}: mutant {n} of input {i} under SHARDMQ_FUZZ_SEED={seed} panicked");
            }
        }
    }
}

#[test]
fn every_protocol_target_survives_a_brief_seeded_fuzz() {
    brief_fuzz(
        "remoting_frame",
        &inputs("remoting_frame", frame_seeds()),
        fuzzing::frame,
    );
    brief_fuzz(
        "remoting_bodies",
        &inputs("remoting_bodies", body_seeds()),
        fuzzing::bodies,
    );
    brief_fuzz(
        "native_frame",
        &inputs("native_frame", native_seeds()),
        shardmq_protocol::fuzzing::native,
    );
}
