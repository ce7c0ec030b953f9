//! SendMessage: 5.x messages checked as the RocketMQ proxy checks them, turned into records
//! (the same fields a remoting send fills, so any consumer reads them alike), and the queue
//! they go to.
//!
//! - One request is one batch to one queue: its messages must share a topic (the proxy's rule).
//! - The broker picks the queue, as the proxy does (the 5.x clients only know "queue 0" of each
//!   broker, `docs/grpc-5x-client.md` §1), by `core::produce::queue_for`.
//! - Record fields: `tag` → tags, `keys` → keys, `message_id` → the unique id (`UNIQ_KEY`, what
//!   4.x consumers see as the message id), `message_group` → the `__SHARDINGKEY` property (as
//!   the proxy stores it), `born_timestamp`, the client's address as born host, every user
//!   property after them.
//! - Refused, nothing stored: an empty or oversized body, a blank or `|`-holding tag, a blank
//!   key, a blank or over-long message group, a user property named like a system one or
//!   holding RocketMQ's property separators, more properties than 4.x can carry, a gzip body,
//!   and the message kinds this broker does not have yet (delayed, transactional, priority,
//!   lite): each with its 5.x code and a reason.

use shardmq_grpc_proto::v2::{Code, Encoding, Message, MessageType};
use shardmq_protocol::limits::{validate_topic_name, BATCH_RECORDS_MAX};
use shardmq_protocol::remoting::properties::{key, NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR};
use shardmq_protocol::remoting::stored::PROPERTIES_BYTES_MAX;
use shardmq_protocol::{Property, RecordRef};

use super::clients::MAX_BODY_BYTES;
use super::status::Refusal;

/// The property a message group is stored in (RocketMQ's `MessageConst.PROPERTY_SHARDING_KEY`).
pub const SHARDING_KEY: &str = "__SHARDINGKEY";
/// The proxy's `maxMessageGroupSize`.
const MESSAGE_GROUP_MAX: usize = 64;
/// Longest message id accepted (the clients make 34 characters).
const MESSAGE_ID_MAX: usize = 128;

/// A request's messages, checked, as records ready to encode.
pub struct Checked<'a> {
    pub topic: &'a str,
    pub message_group: Option<&'a str>,
    pub records: Vec<RecordRef<'a>>,
    pub message_ids: Vec<&'a str>,
}

fn bad(code: Code, message: impl Into<String>) -> Refusal {
    Refusal::new(code, message)
}

/// Checks every message of one SendMessage request.
pub fn check<'a>(messages: &'a [Message], born_host: &'a [u8]) -> Result<Checked<'a>, Refusal> {
    let first = messages
        .first()
        .ok_or_else(|| bad(Code::BadRequest, "the request holds no message"))?;
    if messages.len() as u64 > u64::from(BATCH_RECORDS_MAX) {
        return Err(bad(
            Code::BadRequest,
            format!("at most {BATCH_RECORDS_MAX} messages in one request"),
        ));
    }
    let topic = first.topic.as_ref().map_or("", |t| t.name.as_str());
    validate_topic_name(topic)
        .map_err(|e| bad(Code::IllegalTopic, format!("topic {topic:?}: {e}")))?;
    let mut checked = Checked {
        topic,
        message_group: None,
        records: Vec::with_capacity(messages.len()),
        message_ids: Vec::with_capacity(messages.len()),
    };
    for (i, message) in messages.iter().enumerate() {
        let this_topic = message.topic.as_ref().map_or("", |t| t.name.as_str());
        if this_topic != topic {
            return Err(bad(
                Code::BadRequest,
                format!("message {i} is for topic {this_topic:?}; one request sends to one topic ({topic:?})"),
            ));
        }
        let (record, id, group) = record_of(message, born_host)?;
        if i == 0 {
            checked.message_group = group;
        }
        checked.records.push(record);
        checked.message_ids.push(id);
    }
    Ok(checked)
}

fn record_of<'a>(
    message: &'a Message,
    born_host: &'a [u8],
) -> Result<(RecordRef<'a>, &'a str, Option<&'a str>), Refusal> {
    let sys = message
        .system_properties
        .as_ref()
        .ok_or_else(|| bad(Code::BadRequest, "a message without system properties"))?;
    let id = sys.message_id.as_str();
    if id.is_empty() || id.len() > MESSAGE_ID_MAX || id.contains(char::is_control) {
        return Err(bad(
            Code::IllegalMessageId,
            format!("message id {id:?} is not valid"),
        ));
    }
    check_kind(sys)?;
    check_body(&message.body, sys.body_encoding)?;
    let tags = sys.tag.as_deref().unwrap_or("");
    if sys.tag.is_some() && (tags.trim().is_empty() || tags.contains('|')) {
        return Err(bad(
            Code::IllegalMessageTag,
            format!("tag {tags:?}: not blank, no '|'"),
        ));
    }
    if let Some(k) = sys
        .keys
        .iter()
        .find(|k| k.trim().is_empty() || k.contains(' '))
    {
        return Err(bad(
            Code::IllegalMessageKey,
            format!("key {k:?}: not blank, no spaces"),
        ));
    }
    let group = sys.message_group.as_deref();
    if let Some(g) = group {
        if g.trim().is_empty() || g.len() > MESSAGE_GROUP_MAX || has_separator(g) {
            return Err(bad(
                Code::IllegalMessageGroup,
                format!("message group {g:?}: not blank, at most {MESSAGE_GROUP_MAX} bytes"),
            ));
        }
    }
    let properties = properties_of(message, group)?;
    let born_timestamp_ms = sys.born_timestamp.as_ref().map_or(0, |t| {
        (t.seconds.max(0) as u64) * 1000 + (t.nanos.max(0) as u64) / 1_000_000
    });
    let record = RecordRef {
        born_timestamp_ms,
        born_host,
        tags,
        keys: sys.keys.clone(),
        unique_id: id,
        properties,
        payload: &message.body,
        ..RecordRef::default()
    };
    Ok((record, id, group))
}

/// The kinds this broker stores today: normal and FIFO messages.
fn check_kind(sys: &shardmq_grpc_proto::v2::SystemProperties) -> Result<(), Refusal> {
    let kind = MessageType::try_from(sys.message_type).unwrap_or(MessageType::Unspecified);
    let unsupported = |what: &str| {
        bad(
            Code::Unsupported,
            format!("{what} messages are not supported by this broker yet"),
        )
    };
    if sys.delivery_timestamp.is_some() || kind == MessageType::Delay {
        return Err(unsupported("delayed"));
    }
    match kind {
        MessageType::Unspecified | MessageType::Normal => Ok(()),
        MessageType::Fifo if sys.message_group.is_some() => Ok(()),
        MessageType::Fifo => Err(bad(
            Code::MessagePropertyConflictWithType,
            "a FIFO message needs a message group",
        )),
        MessageType::Transaction => Err(unsupported("transactional")),
        other => Err(unsupported(other.as_str_name())),
    }
}

fn check_body(body: &[u8], encoding: i32) -> Result<(), Refusal> {
    if body.is_empty() {
        return Err(bad(Code::MessageBodyEmpty, "the message body is empty"));
    }
    if body.len() > MAX_BODY_BYTES as usize {
        return Err(bad(
            Code::MessageBodyTooLarge,
            format!("the body is {} bytes, at most {MAX_BODY_BYTES}", body.len()),
        ));
    }
    if encoding == Encoding::Gzip as i32 {
        return Err(bad(
            Code::Unsupported,
            "gzip message bodies are not supported by this broker yet; send them uncompressed",
        ));
    }
    Ok(())
}

fn has_separator(text: &str) -> bool {
    text.contains([NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR])
}

/// Names a user property may not take: the record's own fields and what 4.x reads as kinds.
fn reserved(name: &str) -> bool {
    [
        key::TAGS,
        key::KEYS,
        key::UNIQ_KEY,
        key::DELAY,
        key::TRAN_MSG,
        SHARDING_KEY,
    ]
    .contains(&name)
        || name.starts_with("TIMER_")
        || name.starts_with("__RMQ")
}

fn properties_of(message: &Message, group: Option<&str>) -> Result<Vec<Property>, Refusal> {
    let mut properties = Vec::with_capacity(message.user_properties.len() + 1);
    if let Some(g) = group {
        properties.push(Property {
            name: SHARDING_KEY.into(),
            value: g.into(),
        });
    }
    // Sorted, so a message's properties are stored the same however the map iterates.
    let mut user: Vec<_> = message.user_properties.iter().collect();
    user.sort();
    let mut bytes = 0usize;
    for (name, value) in user {
        if name.is_empty() || reserved(name) || has_separator(name) || has_separator(value) {
            return Err(bad(
                Code::IllegalMessagePropertyKey,
                format!("user property {name:?}: a system name, empty, or holding \\u0001/\\u0002"),
            ));
        }
        bytes += name.len() + value.len() + 2;
        properties.push(Property {
            name: name.clone(),
            value: value.clone(),
        });
    }
    if bytes > PROPERTIES_BYTES_MAX {
        return Err(bad(
            Code::MessagePropertiesTooLarge,
            format!("the user properties take {bytes} bytes, at most {PROPERTIES_BYTES_MAX}"),
        ));
    }
    Ok(properties)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardmq_grpc_proto::v2::{Resource, SystemProperties};

    fn message(topic: &str, id: &str) -> Message {
        Message {
            topic: Some(Resource {
                name: topic.into(),
                ..Resource::default()
            }),
            body: b"hello".to_vec(),
            system_properties: Some(SystemProperties {
                message_id: id.into(),
                tag: Some("TagA".into()),
                keys: vec!["k1".into(), "k2".into()],
                ..SystemProperties::default()
            }),
            ..Message::default()
        }
    }

    fn refused_code(messages: &[Message]) -> Code {
        check(messages, &[]).err().expect("refused").code
    }

    #[test]
    fn a_message_becomes_a_record_with_its_fields() {
        let mut m = message("t", "01ABC");
        m.user_properties.insert("b".into(), "2".into());
        m.user_properties.insert("a".into(), "1".into());
        m.system_properties.as_mut().unwrap().message_group = Some("g".into());
        m.system_properties.as_mut().unwrap().message_type = MessageType::Fifo as i32;
        let messages = [m];
        let checked = check(&messages, &[127, 0, 0, 1, 0, 1]).unwrap();
        let r = &checked.records[0];
        assert_eq!((checked.topic, checked.message_group), ("t", Some("g")));
        assert_eq!(
            (r.tags, r.unique_id, r.payload),
            ("TagA", "01ABC", &b"hello"[..])
        );
        assert_eq!(r.keys, ["k1", "k2"]);
        let names: Vec<_> = r.properties.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, [SHARDING_KEY, "a", "b"]);
        assert_eq!(checked.message_ids, ["01ABC"]);
    }

    #[test]
    fn bad_messages_are_refused_with_their_codes() {
        assert_eq!(refused_code(&[]), Code::BadRequest);
        assert_eq!(
            refused_code(&[message("bad topic!", "1")]),
            Code::IllegalTopic
        );
        assert_eq!(refused_code(&[message("t", "")]), Code::IllegalMessageId);
        assert_eq!(
            refused_code(&[message("t", "1"), message("u", "2")]),
            Code::BadRequest
        );
        let with = |f: &dyn Fn(&mut Message)| {
            let mut m = message("t", "1");
            f(&mut m);
            refused_code(&[m])
        };
        assert_eq!(with(&|m| m.body.clear()), Code::MessageBodyEmpty);
        assert_eq!(
            with(&|m| m.body = vec![0; MAX_BODY_BYTES as usize + 1]),
            Code::MessageBodyTooLarge
        );
        let sys = |f: fn(&mut SystemProperties)| {
            with(&move |m: &mut Message| f(m.system_properties.as_mut().unwrap()))
        };
        assert_eq!(sys(|s| s.tag = Some("a|b".into())), Code::IllegalMessageTag);
        assert_eq!(sys(|s| s.tag = Some(" ".into())), Code::IllegalMessageTag);
        assert_eq!(sys(|s| s.keys = vec!["".into()]), Code::IllegalMessageKey);
        assert_eq!(
            sys(|s| s.message_group = Some("".into())),
            Code::IllegalMessageGroup
        );
        assert_eq!(
            sys(|s| s.message_type = MessageType::Fifo as i32),
            Code::MessagePropertyConflictWithType
        );
        assert_eq!(
            sys(|s| s.delivery_timestamp = Some(Default::default())),
            Code::Unsupported
        );
        assert_eq!(
            sys(|s| s.message_type = MessageType::Transaction as i32),
            Code::Unsupported
        );
        assert_eq!(
            sys(|s| s.body_encoding = Encoding::Gzip as i32),
            Code::Unsupported
        );
        for name in ["TAGS", "UNIQ_KEY", "DELAY", "__SHARDINGKEY", "", "a\u{1}b"] {
            let code = with(&|m| {
                m.user_properties.insert(name.into(), "v".into());
            });
            assert_eq!(code, Code::IllegalMessagePropertyKey, "{name:?}");
        }
        let huge = "x".repeat(PROPERTIES_BYTES_MAX);
        assert_eq!(
            with(&|m| {
                m.user_properties.insert("big".into(), huge.clone());
            }),
            Code::MessagePropertiesTooLarge
        );
    }
}
