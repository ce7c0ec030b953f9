//! A SimpleConsumer's calls: ReceiveMessage (POP over every queue of the topic, `core::pop`),
//! AckMessage and ChangeInvisibleDuration, as `docs/grpc-5x-client.md` §3 says the Node client
//! needs them.
//!
//! - Receive asks the shards owning the topic's queues in turn (starting at a rotating shard)
//!   until it has `batch_size` messages; with none, it asks again every [`POLL_EVERY`] until the
//!   long-polling timeout (at most [`LONG_POLL_MAX`]) and answers MESSAGE_NOT_FOUND. It always
//!   finishes before the client's own deadline, which is later than its polling timeout.
//! - Answered as the proxy answers: `status` OK, each message, the delivery time, end of
//!   stream. Each message carries its body's MD5 (upper-case hex, which the client checks), a
//!   receipt handle, its attempt and queue offset. A zlib-compressed body (a 4.x producer's)
//!   is inflated first: 5.x clients know only gzip or plain bodies.
//! - Limits, refused with their codes: batch size 1..=[`BATCH_MAX`], invisible duration
//!   [`INVISIBLE_MIN`]..=[`INVISIBLE_MAX`], a valid group, a filter that parses.
//! - Ack: one result per entry; the top status is the entry's when there is one entry (the
//!   Node client reads only the top), MULTIPLE_RESULTS when some failed among several.

use std::io::Read;
use std::time::Duration;

use md5::{Digest, Md5};
use shardmq_grpc_proto::v2::{self as pb, Code};
use shardmq_protocol::remoting::stored::SYS_FLAG_COMPRESSED;
use shardmq_protocol::routing::shard_for_queue;

use super::send::SHARDING_KEY;
use super::service::Messaging;
use super::status::{self, Refusal};
use crate::core::groups::{FilterKind, FilterSpec};
use crate::core::pop::{PopCall, Popped, ReceiptHandle};

pub const BATCH_MAX: i32 = 32;
pub const INVISIBLE_MIN: Duration = Duration::from_secs(1);
pub const INVISIBLE_MAX: Duration = Duration::from_secs(12 * 3600);
pub const LONG_POLL_MAX: Duration = Duration::from_secs(20);
const POLL_EVERY: Duration = Duration::from_millis(100);

/// A receive, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Receive {
    pub group: String,
    pub topic: pb::Resource,
    pub filter: FilterSpec,
    pub batch: u32,
    pub invisible: Duration,
    pub long_poll: Duration,
}

fn duration(d: Option<&prost_types::Duration>) -> Option<Duration> {
    let d = d?;
    (d.seconds >= 0 && d.nanos >= 0).then(|| Duration::new(d.seconds as u64, d.nanos as u32))
}

pub fn check(request: &pb::ReceiveMessageRequest) -> Result<Receive, Refusal> {
    let group = request.group.as_ref().map_or("", |g| g.name.as_str());
    if group.is_empty() {
        return Err(Refusal::new(
            Code::IllegalConsumerGroup,
            "a receive names its consumer group",
        ));
    }
    let topic = request
        .message_queue
        .as_ref()
        .and_then(|q| q.topic.clone())
        .ok_or_else(|| Refusal::new(Code::IllegalTopic, "a receive names its topic's queue"))?;
    if !(1..=BATCH_MAX).contains(&request.batch_size) {
        return Err(Refusal::new(
            Code::BadRequest,
            format!(
                "batch size {} is not in 1..={BATCH_MAX}",
                request.batch_size
            ),
        ));
    }
    let invisible = duration(request.invisible_duration.as_ref())
        .filter(|d| (INVISIBLE_MIN..=INVISIBLE_MAX).contains(d))
        .ok_or_else(|| {
            Refusal::new(
                Code::IllegalInvisibleTime,
                format!("the invisible duration must be {INVISIBLE_MIN:?}..={INVISIBLE_MAX:?}"),
            )
        })?;
    let long_poll = duration(request.long_polling_timeout.as_ref())
        .unwrap_or(Duration::ZERO)
        .min(LONG_POLL_MAX);
    Ok(Receive {
        group: group.to_string(),
        topic,
        filter: filter_of(request.filter_expression.as_ref())?,
        batch: request.batch_size as u32,
        invisible,
        long_poll,
    })
}

fn filter_of(expression: Option<&pb::FilterExpression>) -> Result<FilterSpec, Refusal> {
    let Some(e) = expression else {
        return Ok(FilterSpec::all());
    };
    let kind = match pb::FilterType::try_from(e.r#type).unwrap_or(pb::FilterType::Unspecified) {
        pb::FilterType::Unspecified | pb::FilterType::Tag => FilterKind::Tag,
        pb::FilterType::Sql => FilterKind::Sql92,
    };
    let expression = if e.expression.trim().is_empty() {
        "*".into()
    } else {
        e.expression.clone()
    };
    Ok(FilterSpec { kind, expression })
}

/// The receive's answer: status, messages and delivery time, or MESSAGE_NOT_FOUND alone.
pub async fn receive(m: &Messaging, r: Receive) -> Vec<pb::ReceiveMessageResponse> {
    let polled = poll(m, &r).await;
    let content = |c| pb::ReceiveMessageResponse { content: Some(c) };
    use pb::receive_message_response::Content;
    match polled {
        Err(refusal) => vec![content(Content::Status(refusal.status()))],
        Ok(popped) if popped.is_empty() => vec![content(Content::Status(
            Refusal::new(Code::MessageNotFound, "no new message").status(),
        ))],
        Ok(popped) => {
            let mut out = vec![content(Content::Status(status::ok()))];
            out.extend(
                popped
                    .into_iter()
                    .map(|p| content(Content::Message(message_of(&r, p)))),
            );
            out.push(content(Content::DeliveryTimestamp(now())));
            out
        }
    }
}

async fn poll(m: &Messaging, r: &Receive) -> Result<Vec<Popped>, Refusal> {
    let topic = m.existing_topic(&r.topic.name)?;
    let shards = m.shards.count();
    let mut by_owner: Vec<Vec<u32>> = vec![Vec::new(); shards as usize];
    for queue in 0..topic.queues {
        by_owner[shard_for_queue(&topic.name, queue, shards) as usize].push(queue);
    }
    let until = tokio::time::Instant::now() + r.long_poll;
    loop {
        let mut got = Vec::new();
        let start = m.next_turn() as usize;
        for k in 0..shards as usize {
            let owner = (start + k) % shards as usize;
            if by_owner[owner].is_empty() || got.len() >= r.batch as usize {
                continue;
            }
            let call = PopCall {
                group: r.group.clone(),
                topic: topic.name.clone(),
                queue_ids: by_owner[owner].clone(),
                filter: r.filter.clone(),
                max_messages: r.batch - got.len() as u32,
                invisible: r.invisible,
            };
            got.extend(m.shards.pop(owner as u32, call).await?);
        }
        if !got.is_empty() || tokio::time::Instant::now() + POLL_EVERY > until {
            return Ok(got);
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

fn now() -> prost_types::Timestamp {
    timestamp_ms(shardmq_protocol::auth::unix_time_ms())
}

fn timestamp_ms(ms: u64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: (ms / 1000) as i64,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

/// The body as a 5.x client reads it: 4.x zlib bodies inflated (as stored if that fails).
fn body_of(record: &shardmq_protocol::Record) -> Vec<u8> {
    if record.sys_flag as i32 & SYS_FLAG_COMPRESSED == 0 {
        return record.payload.clone();
    }
    let mut inflated = Vec::new();
    match flate2::read::ZlibDecoder::new(&record.payload[..]).read_to_end(&mut inflated) {
        Ok(_) => inflated,
        Err(_) => record.payload.clone(),
    }
}

fn born_host(bytes: &[u8]) -> String {
    shardmq_protocol::record::born_host_addr(bytes).map_or_else(String::new, |a| a.ip().to_string())
}

/// One delivered message as a 5.x client reads it.
pub fn message_of(r: &Receive, p: Popped) -> pb::Message {
    let record = p.record;
    let body = body_of(&record);
    let checksum: String = Md5::digest(&body)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let mut group = None;
    let mut user = std::collections::HashMap::new();
    for property in record.properties {
        if property.name == SHARDING_KEY {
            group = Some(property.value);
        } else {
            user.insert(property.name, property.value);
        }
    }
    let message_id = if record.unique_id.is_empty() {
        format!("{:08X}{:016X}", p.queue_id, p.offset)
    } else {
        record.unique_id
    };
    let kind = if group.is_some() {
        pb::MessageType::Fifo
    } else {
        pb::MessageType::Normal
    };
    let system = pb::SystemProperties {
        tag: (!record.tags.is_empty()).then_some(record.tags),
        keys: record.keys,
        message_id,
        body_digest: Some(pb::Digest {
            r#type: pb::DigestType::Md5 as i32,
            checksum,
        }),
        body_encoding: pb::Encoding::Identity as i32,
        message_type: kind as i32,
        born_timestamp: Some(timestamp_ms(record.born_timestamp_ms)),
        born_host: born_host(&record.born_host),
        store_timestamp: Some(timestamp_ms(p.store_ms)),
        receipt_handle: Some(p.handle.encode()),
        queue_id: p.queue_id as i32,
        queue_offset: Some(p.offset as i64),
        invisible_duration: prost_types::Duration::try_from(r.invisible).ok(),
        delivery_attempt: Some(p.attempt as i32),
        message_group: group,
        ..pb::SystemProperties::default()
    };
    pb::Message {
        topic: Some(r.topic.clone()),
        user_properties: user,
        system_properties: Some(system),
        body,
    }
}

/// Acknowledges or re-hides one delivery on the shard that owns its queue.
pub async fn settle(
    m: &Messaging,
    group: &str,
    topic: &str,
    handle: &str,
    invisible: Option<Duration>,
) -> Result<ReceiptHandle, Refusal> {
    let handle = ReceiptHandle::decode(handle).ok_or_else(|| {
        Refusal::new(
            Code::InvalidReceiptHandle,
            "the receipt handle was not issued by this broker",
        )
    })?;
    let owner = shard_for_queue(topic, handle.queue_id, m.shards.count());
    Ok(m.shards
        .settle(owner, group, topic, handle, invisible)
        .await?)
}

pub async fn ack(m: &Messaging, request: pb::AckMessageRequest) -> pb::AckMessageResponse {
    let group = request.group.map(|g| g.name).unwrap_or_default();
    let topic = request.topic.map(|t| t.name).unwrap_or_default();
    let mut entries = Vec::with_capacity(request.entries.len());
    for entry in request.entries {
        let result = settle(m, &group, &topic, &entry.receipt_handle, None).await;
        entries.push(pb::AckMessageResultEntry {
            message_id: entry.message_id,
            receipt_handle: entry.receipt_handle,
            status: Some(status::of(&result)),
        });
    }
    let failed = entries
        .iter()
        .filter(|e| e.status.as_ref().is_some_and(|s| s.code != Code::Ok as i32));
    let status = match (entries.len(), failed.count()) {
        (_, 0) => status::ok(),
        (1, _) => entries[0].status.clone().expect("set above"),
        _ => Refusal::new(Code::MultipleResults, "some acknowledgements failed").status(),
    };
    pb::AckMessageResponse {
        status: Some(status),
        entries,
    }
}

pub async fn change_invisible(
    m: &Messaging,
    request: pb::ChangeInvisibleDurationRequest,
) -> pb::ChangeInvisibleDurationResponse {
    let group = request.group.map(|g| g.name).unwrap_or_default();
    let topic = request.topic.map(|t| t.name).unwrap_or_default();
    let invisible = duration(request.invisible_duration.as_ref())
        .filter(|d| (INVISIBLE_MIN..=INVISIBLE_MAX).contains(d));
    let result = match invisible {
        None => Err(Refusal::new(
            Code::IllegalInvisibleTime,
            format!("the invisible duration must be {INVISIBLE_MIN:?}..={INVISIBLE_MAX:?}"),
        )),
        Some(d) => settle(m, &group, &topic, &request.receipt_handle, Some(d)).await,
    };
    pb::ChangeInvisibleDurationResponse {
        status: Some(status::of(&result)),
        receipt_handle: result.map(|h| h.encode()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardmq_protocol::{Property, Record};

    fn request() -> pb::ReceiveMessageRequest {
        pb::ReceiveMessageRequest {
            group: Some(pb::Resource {
                name: "g".into(),
                ..Default::default()
            }),
            message_queue: Some(pb::MessageQueue {
                topic: Some(pb::Resource {
                    name: "t".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            batch_size: 10,
            invisible_duration: Some(prost_types::Duration {
                seconds: 15,
                nanos: 0,
            }),
            long_polling_timeout: Some(prost_types::Duration {
                seconds: 60,
                nanos: 0,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_receive_is_checked_and_its_long_poll_bounded() {
        let r = check(&request()).unwrap();
        assert_eq!(
            (r.batch, r.invisible, r.long_poll),
            (10, Duration::from_secs(15), LONG_POLL_MAX)
        );
        assert!(r.filter.is_all());
        let refused = |f: fn(&mut pb::ReceiveMessageRequest)| {
            let mut q = request();
            f(&mut q);
            check(&q).unwrap_err().code
        };
        assert_eq!(refused(|q| q.group = None), Code::IllegalConsumerGroup);
        assert_eq!(refused(|q| q.batch_size = 0), Code::BadRequest);
        assert_eq!(refused(|q| q.batch_size = BATCH_MAX + 1), Code::BadRequest);
        assert_eq!(
            refused(|q| q.invisible_duration = None),
            Code::IllegalInvisibleTime
        );
        assert_eq!(
            refused(|q| q.invisible_duration = Some(prost_types::Duration {
                seconds: 0,
                nanos: 5
            })),
            Code::IllegalInvisibleTime
        );
        let mut sql = request();
        sql.filter_expression = Some(pb::FilterExpression {
            r#type: pb::FilterType::Sql as i32,
            expression: "a > 1".into(),
        });
        assert_eq!(check(&sql).unwrap().filter.kind, FilterKind::Sql92);
    }

    #[test]
    fn a_delivered_message_carries_what_the_client_checks() {
        let r = check(&request()).unwrap();
        let mut compressed = Vec::new();
        {
            use std::io::Write;
            let mut z =
                flate2::write::ZlibEncoder::new(&mut compressed, flate2::Compression::default());
            z.write_all(b"hello").unwrap();
        }
        let record = Record {
            born_host: vec![10, 0, 0, 7, 0x1F, 0x90],
            sys_flag: SYS_FLAG_COMPRESSED as u32,
            tags: "TagA".into(),
            keys: vec!["k".into()],
            unique_id: "ID1".into(),
            properties: vec![
                Property {
                    name: SHARDING_KEY.into(),
                    value: "grp".into(),
                },
                Property {
                    name: "a".into(),
                    value: "1".into(),
                },
            ],
            payload: compressed,
            ..Record::default()
        };
        let handle = ReceiptHandle {
            queue_id: 2,
            offset: 9,
            epoch: 5,
        };
        let popped = Popped {
            queue_id: 2,
            offset: 9,
            store_ms: 1_500,
            attempt: 3,
            handle,
            record,
        };
        let m = message_of(&r, popped);
        let sys = m.system_properties.unwrap();
        assert_eq!(m.body, b"hello", "4.x zlib bodies are inflated");
        assert_eq!(
            sys.body_digest.unwrap().checksum,
            "5D41402ABC4B2A76B9719D911017C592"
        );
        assert_eq!(sys.message_group.as_deref(), Some("grp"));
        assert_eq!(sys.message_type, pb::MessageType::Fifo as i32);
        assert_eq!(m.user_properties.len(), 1);
        assert_eq!((sys.delivery_attempt, sys.queue_offset), (Some(3), Some(9)));
        assert_eq!(
            ReceiptHandle::decode(&sys.receipt_handle.unwrap()),
            Some(handle)
        );
        assert_eq!(sys.born_host, "10.0.0.7");
        assert_eq!(sys.store_timestamp.unwrap().nanos, 500_000_000);
    }
}
