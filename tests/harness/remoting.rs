//! Requests as RocketMQ's Java client writes them, for tests that speak remoting directly.

use std::time::Duration;

use shardmq_bench::peers::remoting::connection::RemotingConnection;
use shardmq_protocol::remoting::codes::request;
use shardmq_protocol::remoting::RemotingCommand;

/// The compact (`SendMessageRequestHeaderV2`) header of a send to `topic`'s queue `queue` of
/// the shard it goes to, with `properties` already in RocketMQ's encoding.
pub fn send_v2_header(topic: &str, queue: u32, properties: &str) -> Vec<(&'static str, String)> {
    [
        ("a", "pg"),
        ("b", topic),
        ("c", "TBW102"),
        ("d", "4"),
        ("e", &queue.to_string()),
        ("f", "0"),
        ("g", "1700000000000"),
        ("h", "0"),
        ("i", properties),
        ("j", "0"),
        ("k", "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect()
}

/// A SEND_MESSAGE_V2 of `body` over a connection of its own; the response.
pub fn send_v2(addr: &str, topic: &str, queue: u32, body: &[u8]) -> RemotingCommand {
    let (addr, topic, body) = (addr.to_string(), topic.to_string(), body.to_vec());
    super::run(move || async move {
        let conn = RemotingConnection::connect(&addr, Duration::from_secs(5))
            .await
            .unwrap();
        conn.request(
            request::SEND_MESSAGE_V2,
            &send_v2_header(&topic, queue, ""),
            &body,
            Duration::ZERO,
        )
        .await
        .unwrap()
    })
}
