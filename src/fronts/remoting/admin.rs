//! Administration over remoting, as `mqadmin` and the clients' admin APIs send it to a broker:
//! topic create / update (17), delete (215), every topic's configuration (21), the broker's
//! runtime information (28).
//!
//! Queue counts are per broker in RocketMQ, and every shard is a broker: UPDATE_AND_CREATE_TOPIC
//! with N queues gives the topic N queues on every shard (N × shards in all), which is what the
//! same command against a cluster of that many RocketMQ brokers gives. Queues are never removed
//! (their data and offsets would be stranded), so a smaller N is refused.

use std::rc::Rc;

use shardmq_protocol::remoting::bodies::{self, TopicConfig};
use shardmq_protocol::remoting::codes::response;
use shardmq_protocol::remoting::ext::Fields;
use shardmq_protocol::remoting::RemotingCommand;

use super::connection::Remoting;
use super::dispatch::Handler;
use super::error::Refusal;
use crate::core::topics::{TopicChange, TopicError, PERM_READ, PERM_READ_WRITE, PERM_WRITE};
use crate::core::CoreError;
use crate::server::connection::Conn;

fn perm_of(perm: i64) -> u8 {
    let bits = (perm as u8) & (PERM_READ | PERM_WRITE);
    if bits == 0 {
        PERM_READ_WRITE
    } else {
        bits
    }
}

pub async fn create_topic(conn: &Rc<Conn<Remoting>>, req: &RemotingCommand) -> Handler {
    let f = Fields(&req.ext);
    let name = f.str(&["topic"])?;
    let read: u32 = f.opt_num(&["readQueueNums"])?.unwrap_or(8);
    let write: u32 = f.opt_num(&["writeQueueNums"])?.unwrap_or(read);
    let perm = perm_of(f.opt_num(&["perm"])?.unwrap_or(6));
    let per_shard = read.max(write).max(1);
    let queues = per_shard
        .checked_mul(conn.ctx.core.shard_count)
        .ok_or_else(|| Refusal::system(format!("{per_shard} queues per broker is too many")))?;
    let core = &conn.ctx.core;
    let update = |current: u32| TopicChange {
        queues: (queues != current).then_some(queues),
        perm: Some(perm),
    };
    let done = match core.topics.get(name) {
        None => match core.create_topic(name, queues, perm).await {
            // Created meanwhile by another request: this one is an update, as in Java.
            Err(CoreError::Topic(TopicError::Exists(_))) => {
                let current = core.topic(name)?.queues;
                core.update_topic(name, update(current)).await
            }
            other => other,
        },
        Some(topic) => core.update_topic(name, update(topic.queues)).await,
    };
    match done {
        Ok(_) => Ok(RemotingCommand::response_to(req, response::SUCCESS)),
        Err(CoreError::Topic(err)) => Err(Refusal::system(err)),
        Err(err) => Err(err.into()),
    }
}

pub async fn delete_topic(conn: &Rc<Conn<Remoting>>, req: &RemotingCommand) -> Handler {
    let name = Fields(&req.ext).str(&["topic"])?.to_string();
    match conn.ctx.core.delete_topic(&name).await {
        // Deleting what is not there is done, as in Java.
        Ok(_) | Err(CoreError::TopicNotFound(_)) => {}
        Err(CoreError::Topic(TopicError::NotFound(_))) => {}
        Err(err) => return Err(err.into()),
    }
    Ok(RemotingCommand::response_to(req, response::SUCCESS))
}

/// Every topic with the queues this shard's broker holds.
pub fn topic_configs(conn: &Conn<Remoting>) -> Vec<TopicConfig> {
    let queues = &conn.proto.shard.queues;
    conn.ctx
        .core
        .topics
        .list()
        .iter()
        .map(|t| {
            let local = queues.local_count(&t.name, t.queues);
            TopicConfig {
                name: t.name.clone(),
                read_queue_nums: local,
                write_queue_nums: local,
                perm: u32::from(t.perm),
            }
        })
        .collect()
}

pub async fn all_topic_config(conn: &Rc<Conn<Remoting>>, req: &RemotingCommand) -> Handler {
    let version = conn.ctx.core.topics.registry().version();
    let now = crate::core::now_ms();
    let wrapper = bodies::topic_config_wrapper(&topic_configs(conn), version, now);
    Ok(RemotingCommand::response_to(req, response::SUCCESS)
        .with_body(wrapper.to_string().into_bytes()))
}

pub async fn runtime_info(conn: &Rc<Conn<Remoting>>, req: &RemotingCommand) -> Handler {
    let ctx = &conn.ctx;
    let entries = [
        (
            "brokerVersionDesc",
            format!("shardmq {}", env!("CARGO_PKG_VERSION")),
        ),
        (
            "brokerVersion",
            shardmq_protocol::remoting::codes::version::SHARDMQ.to_string(),
        ),
        ("brokerActive", (!ctx.core.is_shutting_down()).to_string()),
        ("shardId", ctx.core.shard_id.to_string()),
        ("shardCount", ctx.core.shard_count.to_string()),
        ("openConnections", ctx.open_connections().to_string()),
        ("topicCount", ctx.core.topics.list().len().to_string()),
    ];
    Ok(RemotingCommand::response_to(req, response::SUCCESS).with_body(bodies::kv_table(&entries)))
}
