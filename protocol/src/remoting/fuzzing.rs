//! The checks the remoting fuzz targets run (`fuzz/fuzz_targets/remoting_frame.rs`,
//! `remoting_bodies.rs`), kept here so that the committed corpus (`fuzz/corpus/…`) also runs as
//! a plain test on stable (`tests/fuzz_corpus.rs`), and a crash the fuzzer finds becomes a test
//! by adding its input to the corpus.
//!
//! Properties: no input makes a decoder panic; a command that decodes re-encodes strictly, and
//! that encoding decodes and re-encodes to the same bytes (liberal in, strict and stable out);
//! typed header reads never panic; a property string re-encoded from its pairs parses to the
//! same pairs.

use bytes::Bytes;

use super::admin_bodies::SubscriptionGroupConfig;
use super::bodies::LockBatchBody;
use super::bodies::{check_client_subscription, parse_register_broker, HeartbeatData};
use super::ext::Fields;
use super::{batch_body, decode, frame_length, msg_id, properties, stored};

/// The most messages a fuzzed batch body may hold (as the broker bounds it).
const BATCH_MESSAGES_MAX: usize = 1024;

/// A remoting frame without its length prefix, as the broker decodes it.
pub fn frame(data: &[u8]) {
    if let Some(prefix) = data.get(..4) {
        let _ = frame_length(prefix.try_into().expect("four bytes"));
    }
    let Ok(command) = decode(Bytes::copy_from_slice(data)) else {
        return;
    };
    let f = Fields(&command.ext);
    let _ = f.num::<i64>(&["queueId", "e"]);
    let _ = f.num::<i32>(&["sysFlag", "h"]);
    let _ = f.opt_num::<u64>(&["commitOffset"]);
    let _ = f.opt_bool(&["unitMode", "k"]);
    let _ = f.str(&["topic", "b"]);
    let Ok(encoded) = command.encode() else {
        return;
    };
    let again =
        decode(Bytes::copy_from_slice(&encoded[4..])).expect("what the broker encodes, it decodes");
    assert_eq!(
        again.encode().expect("re-encodes"),
        encoded,
        "strict encoding is stable"
    );
}

/// The bodies the broker reads from clients: batches, stored messages, JSON bodies, property
/// strings and message ids.
pub fn bodies(data: &[u8]) {
    let _ = batch_body::decode(data, BATCH_MESSAGES_MAX);
    let _ = stored::decode_all(data);
    let _ = HeartbeatData::parse(data);
    let _ = LockBatchBody::parse(data);
    let _ = parse_register_broker(data);
    let _ = check_client_subscription(data);
    let _ = SubscriptionGroupConfig::parse(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let pairs = properties::parse(text);
        let encoded = properties::encode(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        assert_eq!(properties::parse(&encoded), pairs, "properties round trip");
        let _ = msg_id::parse_offset_msg_id(text);
    }
}
