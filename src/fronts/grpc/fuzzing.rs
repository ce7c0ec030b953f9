//! What the gRPC fuzz target runs (`fuzz/fuzz_targets/grpc_requests.rs`), on stable too
//! (`tests/grpc_fuzz_corpus.rs`): the first byte picks what the rest is — a SendMessage,
//! ReceiveMessage, Settings (TelemetryCommand), Ack or ChangeInvisibleDuration request in
//! protobuf, or a receipt handle or `authorization` header as text — and every check this
//! front end makes of it runs, as on a request off the wire. Nothing may panic; prost's own
//! decoding is fuzzed by its project.

use prost::Message as _;
use shardmq_grpc_proto::v2 as pb;
use shardmq_protocol::ValidatedBatch;

use super::{clients, receive, send};
use crate::core::pop::ReceiptHandle;

pub fn grpc_request(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    match kind % 6 {
        0 => {
            if let Ok(request) = pb::SendMessageRequest::decode(rest) {
                if let Ok(checked) = send::check(&request.messages, &[127, 0, 0, 1, 0, 1]) {
                    let _ = ValidatedBatch::encode(&checked.records);
                    let _ = crate::core::produce::queue_for(checked.message_group, 8, 3);
                }
            }
        }
        1 => {
            if let Ok(request) = pb::ReceiveMessageRequest::decode(rest) {
                let _ = receive::check(&request);
            }
        }
        2 => {
            if let Ok(command) = pb::TelemetryCommand::decode(rest) {
                if let Some(pb::telemetry_command::Command::Settings(settings)) = command.command {
                    let (tx, _rx) = tokio::sync::mpsc::channel(1);
                    let _ = clients::Clients::default().settings("fuzz", 1, &tx, settings);
                }
            }
        }
        3 => {
            let text = String::from_utf8_lossy(rest);
            if let Some(handle) = ReceiptHandle::decode(&text) {
                assert_eq!(ReceiptHandle::decode(&handle.encode()), Some(handle));
            }
        }
        4 => {
            let text = String::from_utf8_lossy(rest);
            let _ = shardmq_protocol::auth::grpc_authorization(&text);
        }
        _ => {
            let _ = pb::AckMessageRequest::decode(rest);
            let _ = pb::ChangeInvisibleDurationRequest::decode(rest);
        }
    }
}
