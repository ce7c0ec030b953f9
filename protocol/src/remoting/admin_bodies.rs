//! The bodies of the admin requests that `mqadmin` and rocketmq-dashboard send (§1, the mqadmin
//! table): topic stats (GET_TOPIC_STATS_INFO 202), consume stats (GET_CONSUME_STATS 208), a
//! group's connections (GET_CONSUMER_CONNECTION_LIST 203) and subscription group configs
//! (UPDATE_AND_CREATE_SUBSCRIPTIONGROUP 200, GET_ALL_SUBSCRIPTIONGROUP_CONFIG 201,
//! GET_SUBSCRIPTIONGROUP_CONFIG 352).
//!
//! Java writes its `Map<MessageQueue, …>` fields with fastjson, which puts the key object itself
//! before the colon: `{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"t"}:{…}}}`. That is
//! not standard JSON, but it is what the Java broker sends and so what every RocketMQ tool parses
//! (fastjson in Java; the Go and Rust clients carry a parser of their own for exactly this), so
//! those two bodies are written the same way here. Everything else is standard JSON with keys in
//! alphabetical order, as fastjson orders a bean's fields.
//!
//! A subscription group config is read liberally (booleans and numbers as strings, unknown
//! fields kept and echoed back) and written with every field Java's `SubscriptionGroupConfig`
//! has, defaulted as Java defaults them.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::bodies::{BodyError, MessageQueue, SubscriptionData};
use crate::record::java_string_hash;

/// Where a queue stands, as GET_TOPIC_STATS_INFO answers it (`TopicOffset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicOffset {
    pub min_offset: i64,
    pub max_offset: i64,
    /// Store time of the last message, 0 for an empty queue.
    pub last_update_timestamp: i64,
}

/// A group's progress on one queue, as GET_CONSUME_STATS answers it (`OffsetWrapper`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetWrapper {
    /// The queue's max offset.
    pub broker_offset: i64,
    /// The group's committed offset (0 when none).
    pub consumer_offset: i64,
    pub pull_offset: i64,
    /// Store time of the last consumed message, 0 when none.
    pub last_timestamp: i64,
}

/// `{key:value,…}` with JSON-object keys, as fastjson writes a map keyed by a bean.
fn object_keyed(entries: impl Iterator<Item = (Value, Value)>) -> String {
    let inner: Vec<String> = entries.map(|(k, v)| format!("{k}:{v}")).collect();
    format!("{{{}}}", inner.join(","))
}

fn queue_key(queue: &MessageQueue) -> Value {
    serde_json::to_value(queue).expect("a message queue is plain data")
}

/// `TopicStatsTable`: `{"offsetTable":{{mq}:{…},…},"topicPutTps":…}`.
pub fn topic_stats_table(offsets: &[(MessageQueue, TopicOffset)], put_tps: f64) -> Vec<u8> {
    let table = object_keyed(offsets.iter().map(|(queue, o)| {
        let value = json!({"lastUpdateTimestamp": o.last_update_timestamp,
                           "maxOffset": o.max_offset, "minOffset": o.min_offset});
        (queue_key(queue), value)
    }));
    format!(
        "{{\"offsetTable\":{table},\"topicPutTps\":{}}}",
        json!(put_tps)
    )
    .into_bytes()
}

/// `ConsumeStats`: `{"consumeTps":…,"offsetTable":{{mq}:{…},…}}`.
pub fn consume_stats(offsets: &[(MessageQueue, OffsetWrapper)], consume_tps: f64) -> Vec<u8> {
    let table = object_keyed(offsets.iter().map(|(queue, o)| {
        let value = json!({"brokerOffset": o.broker_offset, "consumerOffset": o.consumer_offset,
                           "lastTimestamp": o.last_timestamp, "pullOffset": o.pull_offset});
        (queue_key(queue), value)
    }));
    format!(
        "{{\"consumeTps\":{},\"offsetTable\":{table}}}",
        json!(consume_tps)
    )
    .into_bytes()
}

/// One client connection of a group (`Connection`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub client_id: String,
    pub client_addr: String,
    /// `LanguageCode` by name (`JAVA`, `CPP`, …).
    pub language: String,
    pub version: i32,
}

/// A group's connections and what they announced (`ConsumerConnection`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConnection {
    pub connections: Vec<Connection>,
    pub subscriptions: Vec<SubscriptionData>,
    pub consume_type: &'static str,
    pub message_model: &'static str,
    pub consume_from_where: &'static str,
}

/// A subscription as Java serializes `SubscriptionData` (tags and their hash codes listed).
pub fn subscription_json(s: &SubscriptionData) -> Value {
    let tags: Vec<&str> = if s.expression_type == "TAG" && s.sub_string.trim() != "*" {
        s.sub_string
            .split("||")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect()
    } else {
        Vec::new()
    };
    let codes: Vec<i32> = tags.iter().map(|t| java_string_hash(t)).collect();
    json!({"classFilterMode": false, "codeSet": codes, "expressionType": s.expression_type,
           "subString": s.sub_string, "subVersion": s.sub_version, "tagsSet": tags,
           "topic": s.topic})
}

pub fn consumer_connection(c: &ConsumerConnection) -> Vec<u8> {
    let connections: Vec<Value> = c
        .connections
        .iter()
        .map(|k| {
            json!({"clientAddr": k.client_addr, "clientId": k.client_id,
                   "language": k.language, "version": k.version})
        })
        .collect();
    let table: Map<String, Value> = c
        .subscriptions
        .iter()
        .map(|s| (s.topic.clone(), subscription_json(s)))
        .collect();
    json!({"connectionSet": connections, "consumeFromWhere": c.consume_from_where,
           "consumeType": c.consume_type, "messageModel": c.message_model,
           "subscriptionTable": table})
    .to_string()
    .into_bytes()
}

/// RocketMQ's `SubscriptionGroupConfig`, the settings of one consumer group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionGroupConfig {
    pub group_name: String,
    pub consume_enable: bool,
    pub consume_from_min_enable: bool,
    pub consume_broadcast_enable: bool,
    pub consume_message_orderly: bool,
    pub retry_queue_nums: i32,
    pub retry_max_times: i32,
    pub broker_id: i64,
    pub which_broker_when_consume_slowly: i64,
    pub notify_consumer_ids_changed_enable: bool,
    pub group_sys_flag: i32,
    pub consume_timeout_minute: i32,
    /// Fields this broker does not interpret (`groupRetryPolicy`, `subscriptionDataSet`,
    /// `attributes`, future ones), kept as they came and written back.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl SubscriptionGroupConfig {
    /// Java's defaults for a group nobody configured.
    pub fn defaults(group: &str) -> SubscriptionGroupConfig {
        SubscriptionGroupConfig {
            group_name: group.to_string(),
            consume_enable: true,
            consume_from_min_enable: true,
            consume_broadcast_enable: true,
            consume_message_orderly: false,
            retry_queue_nums: 1,
            retry_max_times: 16,
            broker_id: 0,
            which_broker_when_consume_slowly: 1,
            notify_consumer_ids_changed_enable: true,
            group_sys_flag: 0,
            consume_timeout_minute: 15,
            other: Map::from_iter([
                (
                    "groupRetryPolicy".to_string(),
                    json!({"type": "CUSTOMIZED"}),
                ),
                ("attributes".to_string(), json!({})),
            ]),
        }
    }

    /// An UPDATE_AND_CREATE_SUBSCRIPTIONGROUP body: missing fields take Java's defaults.
    pub fn parse(body: &[u8]) -> Result<SubscriptionGroupConfig, BodyError> {
        let what = "subscription group config";
        let bad = |why: String| BodyError {
            what,
            why: crate::text::bounded(why),
        };
        let map = match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(bad("not a JSON object".into())),
            Err(e) => return Err(bad(e.to_string())),
        };
        let name = match map.get("groupName") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            _ => return Err(bad("no groupName".into())),
        };
        let mut config = SubscriptionGroupConfig::defaults(&name);
        for (key, value) in map {
            config.set(&key, value).map_err(bad)?;
        }
        Ok(config)
    }

    /// Sets one field from its JSON value, read liberally.
    fn set(&mut self, key: &str, value: Value) -> Result<(), String> {
        let flag =
            |v: &Value| liberal_bool(v).ok_or_else(|| format!("{key} is not a boolean: {v}"));
        let int = |v: &Value| liberal_i64(v).ok_or_else(|| format!("{key} is not a number: {v}"));
        let small = |v: &Value| {
            int(v).and_then(|n| i32::try_from(n).map_err(|_| format!("{key} is out of range: {n}")))
        };
        match key {
            "groupName" => {}
            "consumeEnable" => self.consume_enable = flag(&value)?,
            "consumeFromMinEnable" => self.consume_from_min_enable = flag(&value)?,
            "consumeBroadcastEnable" => self.consume_broadcast_enable = flag(&value)?,
            "consumeMessageOrderly" => self.consume_message_orderly = flag(&value)?,
            "notifyConsumerIdsChangedEnable" => {
                self.notify_consumer_ids_changed_enable = flag(&value)?
            }
            "retryQueueNums" => self.retry_queue_nums = small(&value)?,
            "retryMaxTimes" => self.retry_max_times = small(&value)?,
            "groupSysFlag" => self.group_sys_flag = small(&value)?,
            "consumeTimeoutMinute" => self.consume_timeout_minute = small(&value)?,
            "brokerId" => self.broker_id = int(&value)?,
            "whichBrokerWhenConsumeSlowly" => self.which_broker_when_consume_slowly = int(&value)?,
            _ => {
                self.other.insert(key.to_string(), value);
            }
        }
        Ok(())
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("a group config is plain data")
    }
}

fn liberal_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().filter(|n| *n == 0 || *n == 1).map(|n| n == 1),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn liberal_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `SubscriptionGroupWrapper`: every group's config, with a data version.
pub fn subscription_group_wrapper(
    configs: &[SubscriptionGroupConfig],
    data_version: u64,
    timestamp_ms: u64,
) -> Vec<u8> {
    let table: Map<String, Value> = configs
        .iter()
        .map(|c| (c.group_name.clone(), c.to_json()))
        .collect();
    json!({"dataVersion": {"counter": data_version, "stateVersion": 0, "timestamp": timestamp_ms},
           "forbiddenTable": {}, "subscriptionGroupTable": table})
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mq(queue_id: i32) -> MessageQueue {
        MessageQueue {
            broker_name: "b-00".into(),
            queue_id,
            topic: "t".into(),
        }
    }

    #[test]
    fn stats_tables_are_keyed_by_queue_objects_as_fastjson_writes_them() {
        let offsets = TopicOffset {
            min_offset: 1,
            max_offset: 9,
            last_update_timestamp: 7,
        };
        let body = topic_stats_table(&[(mq(0), offsets), (mq(1), offsets)], 0.0);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"offsetTable":{{"brokerName":"b-00","queueId":0,"topic":"t"}:{"lastUpdateTimestamp":7,"maxOffset":9,"minOffset":1},{"brokerName":"b-00","queueId":1,"topic":"t"}:{"lastUpdateTimestamp":7,"maxOffset":9,"minOffset":1}},"topicPutTps":0.0}"#
        );
        let progress = OffsetWrapper {
            broker_offset: 9,
            consumer_offset: 4,
            pull_offset: 5,
            last_timestamp: 3,
        };
        let body = String::from_utf8(consume_stats(&[(mq(2), progress)], 1.5)).unwrap();
        assert_eq!(
            body,
            r#"{"consumeTps":1.5,"offsetTable":{{"brokerName":"b-00","queueId":2,"topic":"t"}:{"brokerOffset":9,"consumerOffset":4,"lastTimestamp":3,"pullOffset":5}}}"#
        );
        assert_eq!(
            consume_stats(&[], 0.0),
            br#"{"consumeTps":0.0,"offsetTable":{}}"#
        );
    }

    #[test]
    fn a_group_config_is_read_liberally_and_keeps_what_it_does_not_know() {
        let body = br#"{"groupName":" g1 ","consumeEnable":"false","retryMaxTimes":"3",
                        "consumeBroadcastEnable":0,"groupRetryPolicy":{"type":"EXPONENTIAL"},
                        "futureField":[1]}"#;
        let config = SubscriptionGroupConfig::parse(body).unwrap();
        assert_eq!(config.group_name, "g1");
        assert!(!config.consume_enable && !config.consume_broadcast_enable);
        assert_eq!(config.retry_max_times, 3);
        assert_eq!(config.retry_queue_nums, 1, "defaulted");
        let back = config.to_json();
        assert_eq!(back["groupRetryPolicy"]["type"], "EXPONENTIAL");
        assert_eq!(back["futureField"], json!([1]));
        assert_eq!(back["consumeEnable"], json!(false));
        assert_eq!(back["consumeTimeoutMinute"], json!(15));
        let again: SubscriptionGroupConfig = serde_json::from_value(back).unwrap();
        assert_eq!(again, config);
    }

    #[test]
    fn a_bad_group_config_says_which_field() {
        for (body, why) in [
            (&br#"{"consumeEnable":true}"#[..], "no groupName"),
            (
                br#"{"groupName":"g","consumeEnable":"maybe"}"#,
                "consumeEnable",
            ),
            (
                br#"{"groupName":"g","retryMaxTimes":99999999999}"#,
                "retryMaxTimes",
            ),
            (br#"[1]"#, "not a JSON object"),
            (br#"{"groupName":"#, "EOF"),
        ] {
            let err = SubscriptionGroupConfig::parse(body).unwrap_err();
            assert!(err.to_string().contains(why), "{err} for {why}");
        }
    }

    #[test]
    fn subscriptions_list_their_tags_and_java_hash_codes() {
        let s = SubscriptionData {
            topic: "t".into(),
            sub_string: "a || b".into(),
            expression_type: "TAG",
            sub_version: 5,
        };
        let v = subscription_json(&s);
        assert_eq!(v["tagsSet"], json!(["a", "b"]));
        assert_eq!(v["codeSet"], json!([97, 98]));
        let all = SubscriptionData {
            sub_string: "*".into(),
            ..s
        };
        assert_eq!(subscription_json(&all)["tagsSet"], json!([]));
    }
}
