//! Routes as the embedded name server answers them: for each shard that holds queues of the
//! topic, a QueueData with its queue count (the client's numbers 0..n on that broker) and a
//! BrokerData with its remoting address as master (id 0).
//!
//! TBW102, the template clients fall back to for a topic that does not exist yet, is routed
//! only when auto-creation is on, with perm 7 (read, write, inherit) and, on every shard, the
//! fewest queues a new topic will have on any shard (`default_topic_queues / shards`), so a
//! client that sends by it never names a queue the created topic lacks.

use shardmq_protocol::remoting::bodies::{BrokerData, QueueData};

use crate::core::topics::{PERM_INHERIT, PERM_READ_WRITE};
use crate::core::Core;
use crate::fronts::remoting::shard_queues::ShardQueues;
use crate::fronts::remoting::state::Directory;

pub const AUTO_CREATE_TEMPLATE: &str = "TBW102";

/// The brokers of the cluster, as routes name them.
pub fn brokers(directory: &Directory) -> Vec<BrokerData> {
    directory
        .brokers()
        .iter()
        .map(|b| BrokerData {
            cluster: directory.cluster.clone(),
            broker_name: b.broker_name.clone(),
            master_addr: b.addr.to_string(),
        })
        .collect()
}

/// The route of `topic`, or `None` when no broker has it.
pub fn route(
    core: &Core,
    directory: &Directory,
    topic: &str,
) -> Option<(Vec<BrokerData>, Vec<QueueData>)> {
    let shards = core.shard_count;
    let per_shard: Box<dyn Fn(u32) -> u32> = if topic == AUTO_CREATE_TEMPLATE {
        if !core.config.auto_create_topics {
            return None;
        }
        let least = (core.config.default_topic_queues / shards).max(1);
        Box::new(move |_| least)
    } else {
        let found = core.topics.get(topic)?;
        let queues = found.queues;
        let name = topic.to_string();
        Box::new(move |k| ShardQueues::new(k, shards).local_count(&name, queues))
    };
    let perm = if topic == AUTO_CREATE_TEMPLATE {
        u32::from(PERM_READ_WRITE | PERM_INHERIT)
    } else {
        u32::from(core.topics.get(topic)?.perm)
    };
    let all = brokers(directory);
    let mut used = Vec::new();
    let mut queues = Vec::new();
    for (b, data) in directory.brokers().iter().zip(all) {
        let n = per_shard(b.shard_id);
        if n == 0 {
            continue;
        }
        queues.push(QueueData {
            broker_name: b.broker_name.clone(),
            read_queue_nums: n,
            write_queue_nums: n,
            perm,
        });
        used.push(data);
    }
    (!queues.is_empty()).then_some((used, queues))
}
