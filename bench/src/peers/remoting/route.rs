//! Where a RocketMQ client sends: the brokers of a topic's route and their queues, as a stock
//! client sees them (no shard awareness). For `--peer shardmq-remoting` the driver starts from
//! the broker's name server, as a RocketMQ application does: it creates the topic through the
//! first broker of the cluster, asks for the route, and numbers the queues the way RocketMQ
//! clients order them (by broker name, then queue id); bench queue q is the q-th of that list.
//! Against a single broker whose address the bench knows (rocketmq-rust), the route is that
//! broker's queues 0..n.

use std::collections::BTreeMap;
use std::time::Duration;

use shardmq_protocol::remoting::codes::request::{GET_BROKER_CLUSTER_INFO, GET_ROUTEINFO_BY_TOPIC};

use super::command::{Command, SUCCESS};
use super::connection::RemotingConnection;

/// One queue as a client addresses it: the broker's address and the queue's id there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedQueue {
    pub broker_addr: String,
    pub queue_id: u32,
}

/// A queue list of one broker.
pub fn single_broker(addr: &str, queues: u32) -> Vec<RoutedQueue> {
    (0..queues)
        .map(|queue_id| RoutedQueue {
            broker_addr: addr.to_string(),
            queue_id,
        })
        .collect()
}

fn body_json(reply: &Command, what: &str) -> Result<serde_json::Value, String> {
    if reply.code != SUCCESS {
        return Err(format!(
            "{what}: response code {} {}",
            reply.code,
            reply.remark.as_deref().unwrap_or("")
        ));
    }
    serde_json::from_slice(&reply.body).map_err(|e| format!("{what}: {e}"))
}

/// Every master's address in the cluster the name server knows, by broker name.
pub async fn cluster_brokers(namesrv: &RemotingConnection) -> Result<Vec<String>, String> {
    let reply = namesrv
        .request(GET_BROKER_CLUSTER_INFO, &[], &[], Duration::ZERO)
        .await?;
    let info = body_json(&reply, "cluster info")?;
    let table = info["brokerAddrTable"]
        .as_object()
        .ok_or("cluster info without brokerAddrTable")?;
    let by_name: BTreeMap<&String, String> = table
        .iter()
        .filter_map(|(name, b)| Some((name, b["brokerAddrs"]["0"].as_str()?.to_string())))
        .collect();
    Ok(by_name.into_values().collect())
}

/// The topic's queues in RocketMQ client order.
pub async fn topic_route(
    namesrv: &RemotingConnection,
    topic: &str,
) -> Result<Vec<RoutedQueue>, String> {
    let ext = [("topic", topic.to_string())];
    let reply = namesrv
        .request(GET_ROUTEINFO_BY_TOPIC, &ext, &[], Duration::ZERO)
        .await?;
    let route = body_json(&reply, "route")?;
    let addrs: BTreeMap<String, String> = route["brokerDatas"]
        .as_array()
        .ok_or("route without brokerDatas")?
        .iter()
        .filter_map(|b| {
            let name = b["brokerName"].as_str()?.to_string();
            Some((name, b["brokerAddrs"]["0"].as_str()?.to_string()))
        })
        .collect();
    let mut queues: Vec<(String, u32)> = route["queueDatas"]
        .as_array()
        .ok_or("route without queueDatas")?
        .iter()
        .filter_map(|q| {
            let name = q["brokerName"].as_str()?.to_string();
            Some((name, q["writeQueueNums"].as_u64()? as u32))
        })
        .collect();
    queues.sort();
    let mut out = Vec::new();
    for (name, count) in queues {
        let addr = addrs
            .get(&name)
            .ok_or_else(|| format!("route names broker {name} without an address"))?;
        out.extend(single_broker(addr, count));
    }
    Ok(out)
}
