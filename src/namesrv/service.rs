//! What a name server answers, whether embedded in a broker (its own shards, plus any broker
//! that registered with it) or standalone (`shardmq namesrv`: registered brokers only).
//!
//! Requests: GET_ROUTEINFO_BY_TOPIC (105), GET_BROKER_CLUSTER_INFO (106),
//! GET_ALL_TOPIC_LIST_FROM_NAMESERVER (206), GET_TOPICS_BY_CLUSTER (224), REGISTER_BROKER (103),
//! UNREGISTER_BROKER (104), DELETE_TOPIC_IN_NAMESRV (216), and the KV calls (100, 101, 219: a
//! name server without KV entries, as a fresh Java one; a put is refused rather than dropped).
//! Unknown codes get REQUEST_CODE_NOT_SUPPORTED. A registration whose body is compressed (Java's
//! `compressedRegister`) is refused with the reason; one whose `bodyCrc32` does not match gets
//! Java's `crc32 not match`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use shardmq_protocol::remoting::bodies::{self, BrokerData, QueueData};
use shardmq_protocol::remoting::codes::{request as code, response};
use shardmq_protocol::remoting::ext::Fields;
use shardmq_protocol::remoting::RemotingCommand;

use super::registry::{BrokerRegistry, Registration, BROKER_EXPIRY_DEFAULT};
use crate::fronts::remoting::error::Refusal;
use crate::sync::lock;

/// The brokers a name server knows without registration: an embedded one's own shards.
pub trait OwnBrokers {
    fn route(&self, topic: &str) -> Option<(Vec<BrokerData>, Vec<QueueData>)>;
    fn brokers(&self) -> Vec<BrokerData>;
    fn topics(&self) -> Vec<String>;
    /// The cluster the own brokers belong to.
    fn cluster(&self) -> &str;
}

/// Answers one request.
pub fn answer(
    own: Option<&dyn OwnBrokers>,
    registry: &Mutex<BrokerRegistry>,
    req: &RemotingCommand,
) -> Result<RemotingCommand, Refusal> {
    let now = Instant::now();
    for name in lock(registry).expire(now) {
        tracing::info!(broker = %name, "a registered broker expired (no registration within its timeout)");
    }
    let ok = || RemotingCommand::response_to(req, response::SUCCESS);
    let f = Fields(&req.ext);
    match req.code {
        code::GET_ROUTEINFO_BY_TOPIC => {
            let topic = f.str(&["topic"])?;
            let (brokers, queues) = route(own, registry, topic).ok_or_else(|| {
                Refusal::new(
                    response::TOPIC_NOT_EXIST,
                    format!("No topic route info in name server for the topic: {topic}"),
                )
            })?;
            Ok(ok().with_body(bodies::topic_route(&brokers, &queues)))
        }
        code::GET_BROKER_CLUSTER_INFO => {
            let mut all = own.map(|o| o.brokers()).unwrap_or_default();
            let registered = lock(registry).brokers();
            merge(&mut all, registered);
            Ok(ok().with_body(bodies::cluster_info(&all)))
        }
        code::GET_ALL_TOPIC_LIST_FROM_NAMESERVER | code::GET_TOPICS_BY_CLUSTER => {
            let cluster = (req.code == code::GET_TOPICS_BY_CLUSTER)
                .then(|| f.opt_str(&["cluster"]))
                .flatten();
            let mut names = own
                .filter(|o| cluster.is_none_or(|c| c == o.cluster()))
                .map(|o| o.topics())
                .unwrap_or_default();
            names.extend(lock(registry).topics(cluster));
            names.sort();
            names.dedup();
            Ok(ok().with_body(bodies::topic_list(&names)))
        }
        code::REGISTER_BROKER => register(registry, req, now),
        code::UNREGISTER_BROKER => {
            let name = f.str(&["brokerName"])?;
            let addr = f.str(&["brokerAddr"])?;
            if lock(registry).unregister(name, addr) {
                tracing::info!(broker = %name, %addr, "broker unregistered");
            }
            Ok(ok())
        }
        code::DELETE_TOPIC_IN_NAMESRV => {
            let topic = f.str(&["topic"])?;
            lock(registry).delete_topic(topic, f.opt_str(&["clusterName"]));
            Ok(ok())
        }
        code::GET_KV_CONFIG => Err(Refusal::new(
            response::QUERY_NOT_FOUND,
            format!(
                "No config item, Namespace: {} Key: {}",
                f.opt_str(&["namespace"]).unwrap_or(""),
                f.opt_str(&["key"]).unwrap_or("")
            ),
        )),
        code::GET_KVLIST_BY_NAMESPACE => Err(Refusal::new(
            response::QUERY_NOT_FOUND,
            "No config item in this namespace",
        )),
        other => Err(Refusal::new(
            response::REQUEST_CODE_NOT_SUPPORTED,
            format!(" request type {other} not supported"),
        )),
    }
}

/// Appends the brokers of `more` whose names `all` lacks (a broker's own shards win).
fn merge(all: &mut Vec<BrokerData>, more: Vec<BrokerData>) {
    for b in more {
        if !all.iter().any(|a| a.broker_name == b.broker_name) {
            all.push(b);
        }
    }
}

fn route(
    own: Option<&dyn OwnBrokers>,
    registry: &Mutex<BrokerRegistry>,
    topic: &str,
) -> Option<(Vec<BrokerData>, Vec<QueueData>)> {
    let (mut brokers, mut queues) = own.and_then(|o| o.route(topic)).unwrap_or_default();
    let (more_brokers, more_queues) = lock(registry).route(topic);
    for (b, q) in more_brokers.into_iter().zip(more_queues) {
        if !brokers.iter().any(|a| a.broker_name == b.broker_name) {
            brokers.push(b);
            queues.push(q);
        }
    }
    (!queues.is_empty()).then_some((brokers, queues))
}

fn register(
    registry: &Mutex<BrokerRegistry>,
    req: &RemotingCommand,
    now: Instant,
) -> Result<RemotingCommand, Refusal> {
    let f = Fields(&req.ext);
    if f.opt_bool(&["compressed"])?.unwrap_or(false) {
        return Err(Refusal::system(
            "compressed registrations are not supported here; register uncompressed \
             (compressedRegister=false, Java's default)",
        ));
    }
    let crc: i64 = f.opt_num(&["bodyCrc32"])?.unwrap_or(0);
    if crc != 0 && i64::from(crc32fast::hash(&req.body) & 0x7FFF_FFFF) != crc {
        return Err(Refusal::system("crc32 not match"));
    }
    let (topics, _version) = bodies::parse_register_broker(&req.body).map_err(Refusal::system)?;
    let expiry = f
        .opt_num::<u64>(&["heartbeatTimeoutMillis"])?
        .filter(|&ms| ms > 0)
        .map_or(BROKER_EXPIRY_DEFAULT, Duration::from_millis);
    let registration = Registration {
        cluster: f.str(&["clusterName"])?.to_string(),
        broker_name: f.str(&["brokerName"])?.to_string(),
        broker_addr: f.str(&["brokerAddr"])?.to_string(),
        broker_id: f.num(&["brokerId"])?,
        topics,
        expiry,
    };
    let name = registration.broker_name.clone();
    let addr = registration.broker_addr.clone();
    let count = registration.topics.len();
    lock(registry)
        .register(registration, now)
        .map_err(Refusal::system)?;
    tracing::debug!(broker = %name, %addr, topics = count, "broker registered");
    Ok(RemotingCommand::response_to(req, response::SUCCESS)
        .with_ext("haServerAddr", "")
        .with_ext("masterAddr", ""))
}
