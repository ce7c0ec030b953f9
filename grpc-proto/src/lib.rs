//! RocketMQ 5.x gRPC messages and the `MessagingService` server and client traits, generated at
//! build time from `proto/apache/rocketmq/v2/{definition,service}.proto` (vendored unchanged
//! from apache/rocketmq-apis @ 3e60073; `admin.proto` is not used). Shared by the broker's gRPC
//! front end and the tests; nothing here has shardmq logic.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v2 {
    tonic::include_proto!("apache.rocketmq.v2");
}

pub use prost_types::{Duration, Timestamp};
