//! The JSON bodies of remoting requests and responses (§4.6–§4.13). Requests are read as
//! liberally as fastjson reads them (appendix C): enums by name or ordinal, numbers as strings,
//! missing optional fields defaulted (`expressionType` → TAG), unknown keys ignored. Responses
//! are written the way Java clients read them (standard JSON, quoted map keys).

use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad {what} body: {why}")]
pub struct BodyError {
    pub what: &'static str,
    pub why: String,
}

fn bad(what: &'static str, why: impl Into<String>) -> BodyError {
    BodyError {
        what,
        why: crate::text::bounded(why.into()),
    }
}

fn parse_object(body: &[u8], what: &'static str) -> Result<Map<String, Value>, BodyError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(bad(what, "not a JSON object")),
        Err(e) => Err(bad(what, e.to_string())),
    }
}

fn text(map: &Map<String, Value>, key: &str) -> Option<String> {
    match map.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn array<'a>(map: &'a Map<String, Value>, key: &str) -> &'a [Value] {
    map.get(key)
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
}

fn boolean(map: &Map<String, Value>, key: &str) -> bool {
    match map.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.trim().to_ascii_lowercase().as_str(), "true" | "1"),
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    }
}

/// An enum given by name or by ordinal into `names`; `None` when absent or unknown.
fn enum_of<'a>(map: &Map<String, Value>, key: &str, names: &[&'a str]) -> Option<&'a str> {
    match map.get(key)? {
        Value::String(s) => {
            let s = s.trim();
            names
                .iter()
                .find(|n| n.eq_ignore_ascii_case(s))
                .copied()
                .or_else(|| s.parse::<usize>().ok().and_then(|i| names.get(i).copied()))
        }
        Value::Number(n) => n
            .as_u64()
            .and_then(|i| names.get(usize::try_from(i).ok()?))
            .copied(),
        _ => None,
    }
}

pub const MESSAGE_MODELS: [&str; 2] = ["BROADCASTING", "CLUSTERING"];
pub const CONSUME_TYPES: [&str; 3] = ["CONSUME_ACTIVELY", "CONSUME_PASSIVELY", "CONSUME_POP"];
/// `ConsumeFromWhere` in declaration order (ordinals as the C++ client sends them).
pub const CONSUME_FROM: [&str; 6] = [
    "CONSUME_FROM_LAST_OFFSET",
    "CONSUME_FROM_LAST_OFFSET_AND_FROM_MIN_WHEN_BOOT_FIRST",
    "CONSUME_FROM_MIN_OFFSET",
    "CONSUME_FROM_MAX_OFFSET",
    "CONSUME_FROM_FIRST_OFFSET",
    "CONSUME_FROM_TIMESTAMP",
];
pub const EXPRESSION_TYPES: [&str; 2] = ["TAG", "SQL92"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionData {
    pub topic: String,
    /// `*`, `a || b`, or SQL92 text.
    pub sub_string: String,
    /// `TAG` or `SQL92`.
    pub expression_type: &'static str,
    pub sub_version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerData {
    pub group_name: String,
    pub broadcasting: bool,
    pub consume_type: &'static str,
    pub consume_from_where: &'static str,
    pub subscriptions: Vec<SubscriptionData>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeartbeatData {
    pub client_id: String,
    pub producer_groups: Vec<String>,
    pub consumers: Vec<ConsumerData>,
}

pub fn subscription(value: &Value) -> Result<SubscriptionData, BodyError> {
    let what = "heartbeat subscription";
    let map = value
        .as_object()
        .ok_or_else(|| bad(what, "not an object"))?;
    let topic = text(map, "topic").ok_or_else(|| bad(what, "no topic"))?;
    Ok(SubscriptionData {
        topic,
        sub_string: text(map, "subString").unwrap_or_else(|| "*".into()),
        expression_type: enum_of(map, "expressionType", &EXPRESSION_TYPES).unwrap_or("TAG"),
        sub_version: text(map, "subVersion")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0),
    })
}

fn consumer(value: &Value) -> Result<ConsumerData, BodyError> {
    let what = "heartbeat consumer";
    let map = value
        .as_object()
        .ok_or_else(|| bad(what, "not an object"))?;
    let group_name = text(map, "groupName").ok_or_else(|| bad(what, "no groupName"))?;
    let subscriptions = array(map, "subscriptionDataSet")
        .iter()
        .map(subscription)
        .collect::<Result<_, _>>()?;
    Ok(ConsumerData {
        group_name,
        broadcasting: enum_of(map, "messageModel", &MESSAGE_MODELS) == Some("BROADCASTING"),
        consume_type: enum_of(map, "consumeType", &CONSUME_TYPES).unwrap_or("CONSUME_PASSIVELY"),
        consume_from_where: enum_of(map, "consumeFromWhere", &CONSUME_FROM)
            .unwrap_or("CONSUME_FROM_LAST_OFFSET"),
        subscriptions,
    })
}

impl HeartbeatData {
    pub fn parse(body: &[u8]) -> Result<HeartbeatData, BodyError> {
        let map = parse_object(body, "heartbeat")?;
        let client_id = text(&map, "clientID").ok_or_else(|| bad("heartbeat", "no clientID"))?;
        let producer_groups = array(&map, "producerDataSet")
            .iter()
            .filter_map(|p| p.as_object().and_then(|p| text(p, "groupName")))
            .collect();
        let consumers = array(&map, "consumerDataSet")
            .iter()
            .map(consumer)
            .collect::<Result<_, _>>()?;
        Ok(HeartbeatData {
            client_id,
            producer_groups,
            consumers,
        })
    }
}

/// A `MessageQueue` as JSON bodies carry it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct MessageQueue {
    #[serde(rename = "brokerName")]
    pub broker_name: String,
    #[serde(rename = "queueId")]
    pub queue_id: i32,
    pub topic: String,
}

fn message_queue(value: &Value) -> Option<MessageQueue> {
    let map = value.as_object()?;
    Some(MessageQueue {
        broker_name: text(map, "brokerName")?,
        queue_id: text(map, "queueId")?.trim().parse().ok()?,
        topic: text(map, "topic")?,
    })
}

/// LOCK_BATCH_MQ / UNLOCK_BATCH_MQ request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockBatchBody {
    pub consumer_group: String,
    pub client_id: String,
    pub queues: Vec<MessageQueue>,
}

impl LockBatchBody {
    pub fn parse(body: &[u8]) -> Result<LockBatchBody, BodyError> {
        let what = "lock batch";
        let map = parse_object(body, what)?;
        let queues = array(&map, "mqSet")
            .iter()
            .map(|v| message_queue(v).ok_or_else(|| bad(what, "a queue lacks a field")))
            .collect::<Result<_, _>>()?;
        Ok(LockBatchBody {
            consumer_group: text(&map, "consumerGroup")
                .ok_or_else(|| bad(what, "no consumerGroup"))?,
            client_id: text(&map, "clientId").ok_or_else(|| bad(what, "no clientId"))?,
            queues,
        })
    }
}

/// `{"lockOKMQSet":[…]}`.
pub fn lock_reply(locked: &[MessageQueue]) -> Vec<u8> {
    serde_json::json!({ "lockOKMQSet": locked })
        .to_string()
        .into_bytes()
}

/// `{"consumerIdList":[…]}`.
pub fn consumer_id_list(ids: &[String]) -> Vec<u8> {
    serde_json::json!({ "consumerIdList": ids })
        .to_string()
        .into_bytes()
}

/// One broker in a route: its name, cluster and master address (id 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerData {
    pub cluster: String,
    pub broker_name: String,
    pub master_addr: String,
}

impl BrokerData {
    fn to_json(&self) -> Value {
        serde_json::json!({
            "brokerAddrs": { "0": self.master_addr },
            "brokerName": self.broker_name,
            "cluster": self.cluster,
            "enableActingMaster": false,
        })
    }
}

/// One broker's queues of a topic in a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueData {
    pub broker_name: String,
    pub read_queue_nums: u32,
    pub write_queue_nums: u32,
    pub perm: u32,
}

/// A topic's route, written as the Java NameServer writes it for clients ≥ 4.9.4.
pub fn topic_route(brokers: &[BrokerData], queues: &[QueueData]) -> Vec<u8> {
    let queue_datas: Vec<Value> = queues
        .iter()
        .map(|q| {
            serde_json::json!({
                "brokerName": q.broker_name,
                "perm": q.perm,
                "readQueueNums": q.read_queue_nums,
                "topicSysFlag": 0,
                "writeQueueNums": q.write_queue_nums,
            })
        })
        .collect();
    serde_json::json!({
        "brokerDatas": brokers.iter().map(BrokerData::to_json).collect::<Vec<_>>(),
        "filterServerTable": {},
        "queueDatas": queue_datas,
    })
    .to_string()
    .into_bytes()
}

/// GET_BROKER_CLUSTER_INFO's body.
pub fn cluster_info(brokers: &[BrokerData]) -> Vec<u8> {
    let mut table = Map::new();
    let mut clusters: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for b in brokers {
        table.insert(b.broker_name.clone(), b.to_json());
        clusters.entry(&b.cluster).or_default().push(&b.broker_name);
    }
    serde_json::json!({ "brokerAddrTable": table, "clusterAddrTable": clusters })
        .to_string()
        .into_bytes()
}

/// `{"topicList":[…]}`.
pub fn topic_list(topics: &[String]) -> Vec<u8> {
    serde_json::json!({ "topicList": topics })
        .to_string()
        .into_bytes()
}

/// A KVTable: `{"table":{…}}`, every value a string.
pub fn kv_table(entries: &[(&str, String)]) -> Vec<u8> {
    let table: Map<String, Value> = entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::String(v.clone())))
        .collect();
    serde_json::json!({ "table": table })
        .to_string()
        .into_bytes()
}

/// A topic's configuration as REGISTER_BROKER and GET_ALL_TOPIC_CONFIG write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    pub name: String,
    pub read_queue_nums: u32,
    pub write_queue_nums: u32,
    pub perm: u32,
}

impl TopicConfig {
    fn to_json(&self) -> Value {
        serde_json::json!({
            "attributes": {},
            "order": false,
            "perm": self.perm,
            "readQueueNums": self.read_queue_nums,
            "topicFilterType": "SINGLE_TAG",
            "topicName": self.name,
            "topicSysFlag": 0,
            "writeQueueNums": self.write_queue_nums,
        })
    }
}

/// The topic config wrapper: `{"dataVersion":{…},"topicConfigTable":{name: TopicConfig}}`.
pub fn topic_config_wrapper(topics: &[TopicConfig], data_version: u64, timestamp_ms: u64) -> Value {
    let table: Map<String, Value> = topics
        .iter()
        .map(|t| (t.name.clone(), t.to_json()))
        .collect();
    serde_json::json!({
        "dataVersion": { "counter": data_version, "stateVersion": 0, "timestamp": timestamp_ms },
        "topicConfigTable": table,
    })
}

/// A REGISTER_BROKER body, uncompressed.
pub fn register_broker_body(wrapper: Value) -> Vec<u8> {
    serde_json::json!({ "filterServerList": [], "topicConfigSerializeWrapper": wrapper })
        .to_string()
        .into_bytes()
}

/// The topics of a REGISTER_BROKER body (uncompressed JSON form) and its data version.
pub fn parse_register_broker(body: &[u8]) -> Result<(Vec<TopicConfig>, u64), BodyError> {
    let what = "register broker";
    let map = parse_object(body, what)?;
    let wrapper = map
        .get("topicConfigSerializeWrapper")
        .and_then(Value::as_object)
        .ok_or_else(|| bad(what, "no topicConfigSerializeWrapper"))?;
    let version = wrapper
        .get("dataVersion")
        .and_then(Value::as_object)
        .and_then(|v| text(v, "counter"))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let number = |m: &Map<String, Value>, k: &str| -> u32 {
        text(m, k).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
    };
    let mut topics = Vec::new();
    if let Some(table) = wrapper.get("topicConfigTable").and_then(Value::as_object) {
        for (name, config) in table {
            let Some(config) = config.as_object() else {
                continue;
            };
            topics.push(TopicConfig {
                name: text(config, "topicName").unwrap_or_else(|| name.clone()),
                read_queue_nums: number(config, "readQueueNums"),
                write_queue_nums: number(config, "writeQueueNums"),
                perm: number(config, "perm"),
            });
        }
    }
    Ok((topics, version))
}

/// CHECK_CLIENT_CONFIG's body: `{"clientId", "group", "subscriptionData": {…}}`; the
/// subscription, if any.
pub fn check_client_subscription(body: &[u8]) -> Result<Option<SubscriptionData>, BodyError> {
    let map = parse_object(body, "check client config")?;
    map.get("subscriptionData")
        .filter(|v| !v.is_null())
        .map(subscription)
        .transpose()
}

/// Whether a JSON object body has a true `key` (used for `onlyThisBroker` and the like).
pub fn flag(body: &[u8], key: &str) -> bool {
    parse_object(body, "request")
        .map(|m| boolean(&m, key))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_and_cpp_heartbeats_parse() {
        let java = br#"{"clientID":"10.0.0.5@12345#1","consumerDataSet":[{"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","consumeType":"CONSUME_PASSIVELY","groupName":"cg","messageModel":"CLUSTERING","subscriptionDataSet":[{"classFilterMode":false,"codeSet":[],"expressionType":"TAG","subString":"*","subVersion":1700000000000,"tagsSet":[],"topic":"TopicTest"}],"unitMode":false}],"producerDataSet":[{"groupName":"CLIENT_INNER_PRODUCER"}]}"#;
        let h = HeartbeatData::parse(java).unwrap();
        assert_eq!(h.client_id, "10.0.0.5@12345#1");
        assert_eq!(h.producer_groups, ["CLIENT_INNER_PRODUCER"]);
        assert_eq!(h.consumers[0].group_name, "cg");
        assert!(!h.consumers[0].broadcasting);
        assert_eq!(
            h.consumers[0].subscriptions[0].sub_version,
            1_700_000_000_000
        );
        // C++: enums as ordinals, subVersion as a string, no expressionType, tagsSet, codeSet.
        let cpp = br#"{"clientID":"c@1","consumerDataSet":[{"consumeFromWhere":4,"consumeType":1,"groupName":"g","messageModel":0,"subscriptionDataSet":[{"subString":"a || b","subVersion":"17","topic":"T"}]}],"producerDataSet":[]}"#;
        let h = HeartbeatData::parse(cpp).unwrap();
        let c = &h.consumers[0];
        assert!(c.broadcasting);
        assert_eq!(c.consume_from_where, "CONSUME_FROM_FIRST_OFFSET");
        assert_eq!(c.subscriptions[0].expression_type, "TAG");
        assert_eq!(c.subscriptions[0].sub_version, 17);
        assert!(HeartbeatData::parse(b"[]").is_err());
        assert!(
            HeartbeatData::parse(br#"{"consumerDataSet":[]}"#).is_err(),
            "no clientID"
        );
    }

    #[test]
    fn lock_bodies_and_routes() {
        let body = br#"{"consumerGroup":"g","clientId":"c","onlyThisBroker":false,"mqSet":[{"brokerName":"b-00","queueId":1,"topic":"t"},{"brokerName":"b-01","queueId":"0","topic":"t"}]}"#;
        let lock = LockBatchBody::parse(body).unwrap();
        assert_eq!(lock.queues.len(), 2);
        assert_eq!(lock.queues[1].queue_id, 0);
        let reply: Value = serde_json::from_slice(&lock_reply(&lock.queues[..1])).unwrap();
        assert_eq!(reply["lockOKMQSet"][0]["brokerName"], "b-00");
        let route = topic_route(
            &[BrokerData {
                cluster: "c".into(),
                broker_name: "b-00".into(),
                master_addr: "127.0.0.1:10911".into(),
            }],
            &[QueueData {
                broker_name: "b-00".into(),
                read_queue_nums: 4,
                write_queue_nums: 4,
                perm: 6,
            }],
        );
        let route: Value = serde_json::from_slice(&route).unwrap();
        assert_eq!(
            route["brokerDatas"][0]["brokerAddrs"]["0"],
            "127.0.0.1:10911"
        );
        assert_eq!(route["filterServerTable"], serde_json::json!({}));
        let wrapper = topic_config_wrapper(
            &[TopicConfig {
                name: "t".into(),
                read_queue_nums: 2,
                write_queue_nums: 2,
                perm: 6,
            }],
            3,
            0,
        );
        let (topics, version) = parse_register_broker(&register_broker_body(wrapper)).unwrap();
        assert_eq!((topics[0].read_queue_nums, version), (2, 3));
    }
}
