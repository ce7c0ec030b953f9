//! Sends over remoting: SEND_MESSAGE (10, long header keys), SEND_MESSAGE_V2 (310, short keys)
//! and SEND_BATCH_MESSAGE (320, §5.6 body), sync, async and oneway alike (the client decides
//! whether it waits; a oneway request is simply not answered).
//!
//! Each message becomes a record: the body as it came (compressed bodies stay compressed; their
//! sys flag says so), `TAGS`, `KEYS` (split on spaces) and `UNIQ_KEY` into their own fields,
//! every other property kept in order (`__RMQ.TRANSIENT.` ones dropped, as Java drops them),
//! the client's address as born host. A batch stores each inner message with its own
//! properties; the batch header's properties never override them (apache/rocketmq#9416).
//!
//! The answer: `msgId` (offset ids from this shard's address and each message's log position,
//! comma-joined for a batch), the queue as the client numbers it, the first queue offset,
//! `transactionId` (the UNIQ_KEY), and `MSG_REGION` / `TRACE_ON`, which Java clients read from
//! every send response. With `flush = sync` it waits for the fdatasync that covers the batch.
//!
//! Not yet: delayed (`DELAY` > 0, timer properties) and transactional (prepared) messages are
//! refused with a clear remark instead of being delivered at once, until the message kinds exist.

use std::rc::Rc;

use shardmq_protocol::limits::{validate_topic_name, BATCH_RECORDS_MAX};
use shardmq_protocol::remoting::codes::{request, response};
use shardmq_protocol::remoting::ext::Fields;
use shardmq_protocol::remoting::msg_id::push_offset_msg_id;
use shardmq_protocol::remoting::properties::{self, key};
use shardmq_protocol::remoting::stored::PROPERTIES_BYTES_MAX;
use shardmq_protocol::remoting::{batch_body, RemotingCommand};
use shardmq_protocol::{Property, RecordRef, ValidatedBatch};

use super::connection::Remoting;
use super::dispatch::{refused, Answer};
use super::error::Refusal;
use crate::core::produce::Ack;
use crate::core::CoreError;
use crate::server::connection::Conn;

/// sys-flag bits of the transaction type (§5.3); PREPARED is a half message.
const TRANSACTION_TYPE: i32 = 0xC;
const TRANSACTION_PREPARED: i32 = 0x4;

/// The fields every message of one send request shares.
struct SendHeader<'a> {
    topic: &'a str,
    queue_id: i32,
    sys_flag: i32,
    born_timestamp: i64,
    flag: i32,
    properties: &'a str,
    reconsume_times: i32,
    batch: bool,
}

fn header(req: &RemotingCommand) -> Result<SendHeader<'_>, Refusal> {
    let f = Fields(&req.ext);
    let topic = f.str(&["b", "topic"])?;
    validate_topic_name(topic).map_err(Refusal::system)?;
    Ok(SendHeader {
        topic,
        queue_id: f.num(&["e", "queueId"])?,
        sys_flag: f.num(&["f", "sysFlag"])?,
        born_timestamp: f.num(&["g", "bornTimestamp"])?,
        flag: f.num(&["h", "flag"])?,
        properties: f.opt_str(&["i", "properties"]).unwrap_or(""),
        reconsume_times: f.opt_num(&["j", "reconsumeTimes"])?.unwrap_or(0),
        batch: req.code == request::SEND_BATCH_MESSAGE
            || f.opt_bool(&["m", "batch"])?.unwrap_or(false),
    })
}

/// Refuses what would need a message kind shardmq does not have yet: a transactional half
/// message, or a delay (`DELAY` other than 0, any `TIMER_*` property) as the record carries it.
fn check_kind(record: &RecordRef<'_>) -> Result<(), Refusal> {
    if record.sys_flag as i32 & TRANSACTION_TYPE == TRANSACTION_PREPARED {
        return Err(Refusal::system(
            "transactional (half) messages are not supported by this broker yet",
        ));
    }
    for Property { name, value } in &record.properties {
        let delayed = (name == key::DELAY && value.trim() != "0") || name.starts_with("TIMER_");
        if delayed {
            return Err(Refusal::system(format!(
                "delayed messages ({name}={value}) are not supported by this broker yet"
            )));
        }
    }
    Ok(())
}

/// The record of one message, borrowing its body and texts from the request. Its properties
/// are bounded as Java bounds them (32767 bytes), so reading them is cheap whatever a client
/// sends; a later duplicate replaces an earlier one (`properties::parse`'s rule).
fn record_of<'a>(
    h: &SendHeader<'_>,
    born_host: &'a [u8],
    flag: i32,
    body: &'a [u8],
    props: &'a str,
) -> Result<RecordRef<'a>, Refusal> {
    if props.len() > PROPERTIES_BYTES_MAX {
        return Err(Refusal::new(
            response::MESSAGE_ILLEGAL,
            format!(
                "the message properties length is too long: {} bytes, at most {PROPERTIES_BYTES_MAX}",
                props.len()
            ),
        ));
    }
    let mut record = RecordRef {
        born_timestamp_ms: u64::try_from(h.born_timestamp).unwrap_or(0),
        born_host,
        flag,
        sys_flag: h.sys_flag as u32,
        reconsume_times: u32::try_from(h.reconsume_times).unwrap_or(0),
        payload: body,
        ..RecordRef::default()
    };
    let mut user: Vec<(&str, &str)> = Vec::new();
    for (name, value) in properties::pairs(props) {
        match name {
            key::TAGS => record.tags = value,
            key::KEYS => {
                record.keys = value
                    .split(' ')
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned)
                    .collect()
            }
            key::UNIQ_KEY => record.unique_id = value,
            n if n.starts_with(key::TRANSIENT_PREFIX) => {}
            _ => user.push((name, value)),
        }
    }
    record.properties = last_of_each(user);
    check_kind(&record)?;
    Ok(record)
}

/// The pairs in first-appearance order, each with its last value.
fn last_of_each(pairs: Vec<(&str, &str)>) -> Vec<Property> {
    let mut last: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for &(name, value) in &pairs {
        last.insert(name, value);
    }
    let mut out = Vec::with_capacity(last.len());
    for (name, _) in pairs {
        if let Some(value) = last.remove(name) {
            out.push(Property {
                name: name.to_owned(),
                value: value.to_owned(),
            });
        }
    }
    out
}

fn records_of<'a>(
    h: &SendHeader<'a>,
    req: &'a RemotingCommand,
    born_host: &'a [u8],
) -> Result<Vec<RecordRef<'a>>, Refusal> {
    if !h.batch {
        return Ok(vec![record_of(
            h,
            born_host,
            h.flag,
            &req.body,
            h.properties,
        )?]);
    }
    let entries = batch_body::decode(&req.body, BATCH_RECORDS_MAX as usize)
        .map_err(|e| Refusal::new(response::MESSAGE_ILLEGAL, e))?;
    entries
        .iter()
        .map(|e| record_of(h, born_host, e.flag, e.body, e.properties))
        .collect()
}

/// The client's queue on this shard → the topic's queue, with the client's number kept for the
/// answer. A negative queue id lets the broker pick one.
async fn target_queue(conn: &Conn<Remoting>, h: &SendHeader<'_>) -> Result<(u32, u32), Refusal> {
    let topic = conn.ctx.core.topic_for_produce(h.topic).await?;
    let queues = &conn.proto.shard.queues;
    let local_count = queues.local_count(h.topic, topic.queues);
    if local_count == 0 {
        return Err(Refusal::system(format!(
            "topic {} has no queue on broker {}",
            topic.name, conn.proto.shard.broker_name
        )));
    }
    let local = match u32::try_from(h.queue_id) {
        Ok(local) => local,
        Err(_) => (h.born_timestamp.unsigned_abs() % u64::from(local_count)) as u32,
    };
    let global = queues.global(h.topic, local, topic.queues).ok_or_else(|| {
        Refusal::system(format!(
            "request queueId[{}] is illegal, topic:[{}] writeQueueNums:[{local_count}] on broker {}",
            h.queue_id, topic.name, conn.proto.shard.broker_name
        ))
    })?;
    Ok((local, global))
}

pub async fn send(conn: &Rc<Conn<Remoting>>, req: &RemotingCommand) -> Answer {
    match try_send(conn, req).await {
        Ok(answer) => answer,
        Err(refusal) => Answer::Now(refused(req, refusal)),
    }
}

async fn try_send(conn: &Rc<Conn<Remoting>>, req: &RemotingCommand) -> Result<Answer, Refusal> {
    let h = header(req)?;
    let born_host = shardmq_protocol::record::born_host_bytes(conn.proto.peer_addr);
    let records = records_of(&h, req, &born_host)?;
    let (local, global) = target_queue(conn, &h).await?;
    let unique_id = records[0].unique_id.to_string();
    let batch =
        ValidatedBatch::encode(&records).map_err(|e| Refusal::from(CoreError::BadBatch(e)))?;
    let produced = conn.ctx.core.produce(h.topic, global, batch).await?;
    let advertised = conn.proto.shard.advertised;
    let mut ids = String::with_capacity(57 * produced.count as usize);
    for i in 0..u64::from(produced.count) {
        if i > 0 {
            ids.push(',');
        }
        push_offset_msg_id(&mut ids, advertised, (produced.position + i) as i64);
    }
    let mut response = RemotingCommand::response_to(req, response::SUCCESS)
        .with_ext("msgId", ids)
        .with_ext("queueId", local)
        .with_ext("queueOffset", produced.base_offset)
        .with_ext("MSG_REGION", "DefaultRegion")
        .with_ext("TRACE_ON", "true");
    if !unique_id.is_empty() {
        response = response.with_ext("transactionId", unique_id);
    }
    Ok(match produced.ack {
        Ack::Now => Answer::Now(response),
        Ack::AfterSync(end) => Answer::AfterSync(response, end),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(properties: &str, sys_flag: i32) -> SendHeader<'_> {
        SendHeader {
            topic: "t",
            queue_id: 0,
            sys_flag,
            born_timestamp: 7,
            flag: 3,
            properties,
            reconsume_times: 0,
            batch: false,
        }
    }

    #[test]
    fn properties_become_record_fields_later_duplicates_winning() {
        let props = "TAGS\u{1}a\u{2}TAGS\u{1}b\u{2}x\u{1}1\u{2}KEYS\u{1}k1  k2\u{2}x\u{1}2\u{2}\
                     UNIQ_KEY\u{1}u\u{2}__RMQ.TRANSIENT.y\u{1}z\u{2}bad\u{2}\u{1}novalue\u{2}";
        let h = header(props, 0);
        let record = record_of(&h, &[1, 2], h.flag, b"body", h.properties).unwrap();
        assert_eq!(record.tags, "b");
        assert_eq!(record.keys, ["k1", "k2"]);
        assert_eq!(record.unique_id, "u");
        assert_eq!(
            record.properties,
            [Property {
                name: "x".into(),
                value: "2".into()
            }]
        );
        assert_eq!((record.flag, record.born_timestamp_ms), (3, 7));
        assert_eq!(record.payload, b"body");
    }

    #[test]
    fn message_kinds_not_built_yet_are_refused() {
        let delayed = header("DELAY\u{1}3\u{2}", 0);
        assert!(record_of(&delayed, &[], 0, b"", delayed.properties).is_err());
        let undelayed = header("DELAY\u{1}0\u{2}", 0);
        assert!(record_of(&undelayed, &[], 0, b"", undelayed.properties).is_ok());
        let half = header("", TRANSACTION_PREPARED);
        assert!(record_of(&half, &[], 0, b"", half.properties).is_err());
        let undone = header("DELAY\u{1}3\u{2}DELAY\u{1}0\u{2}", 0);
        assert!(
            record_of(&undone, &[], 0, b"", undone.properties).is_ok(),
            "the last DELAY is the one the record keeps"
        );
        let huge = "x\u{1}y\u{2}".repeat(PROPERTIES_BYTES_MAX / 4 + 1);
        let long = header(&huge, 0);
        let refused = record_of(&long, &[], 0, b"", long.properties).unwrap_err();
        assert_eq!(refused.code, response::MESSAGE_ILLEGAL);
    }

    #[test]
    fn duplicate_properties_keep_their_first_place_and_last_value() {
        let h = header("a\u{1}1\u{2}b\u{1}2\u{2}a\u{1}3\u{2}", 0);
        let record = record_of(&h, &[], 0, b"", h.properties).unwrap();
        let pairs: Vec<(&str, &str)> = record
            .properties
            .iter()
            .map(|p| (p.name.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(pairs, [("a", "3"), ("b", "2")]);
    }
}
