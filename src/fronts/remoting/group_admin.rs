//! What `mqadmin` and rocketmq-dashboard ask a broker about groups and topics: subscription
//! group configs (200 create or update, 201 all, 352 one, 207 delete), topic stats (202),
//! consume stats (208) and a group's connections (203).
//!
//! Each shard answers as the broker it is advertised as: stats cover the queues this shard owns,
//! numbered as its clients number them, under its broker name (an admin tool asks every broker
//! of the route and merges, as it does with a RocketMQ cluster). Group configs are process-wide
//! (`core::group_configs`), so every shard answers the same; a group that heartbeated but was
//! never configured is answered with Java's defaults (RocketMQ auto-creates such groups).
//!
//! Not measured yet: `topicPutTps` and `consumeTps` are 0.0 until the broker keeps rates
//! (the metrics of the operations issue).

use std::rc::Rc;

use shardmq_protocol::remoting::admin_bodies::{
    self, Connection, ConsumerConnection, OffsetWrapper, SubscriptionGroupConfig, TopicOffset,
};
use shardmq_protocol::remoting::bodies::{MessageQueue, SubscriptionData};
use shardmq_protocol::remoting::codes::response;
use shardmq_protocol::remoting::ext::Fields;
use shardmq_protocol::remoting::RemotingCommand;

use super::connection::Remoting;
use super::dispatch::Handler;
use super::error::Refusal;
use crate::core::groups::{FilterKind, GroupInfo, Mode};
use crate::core::queue_ops::{QueueAnswer, QueueOp};
use crate::core::Core;
use crate::server::connection::Conn;

/// The most topics one GET_CONSUME_STATS may name in its `topicList`.
const STATS_TOPICS_MAX: usize = 1024;
/// The largest UPDATE_AND_CREATE_SUBSCRIPTIONGROUP body (Java's are a few hundred bytes).
const GROUP_CONFIG_BYTES_MAX: usize = 64 * 1024;

pub async fn update_group(conn: &Rc<Conn<Remoting>>, req: &RemotingCommand) -> Handler {
    // Every config is kept in memory on every shard and rewritten with the file on each change.
    if req.body.len() > GROUP_CONFIG_BYTES_MAX {
        return Err(Refusal::new(
            response::INVALID_PARAMETER,
            format!(
                "a subscription group config of {} bytes; at most {GROUP_CONFIG_BYTES_MAX}",
                req.body.len()
            ),
        ));
    }
    let config = SubscriptionGroupConfig::parse(&req.body)
        .map_err(|e| Refusal::new(response::INVALID_PARAMETER, e))?;
    Core::check_group(&config.group_name)?;
    conn.ctx.core.configure_group(config).await?;
    Ok(RemotingCommand::response_to(req, response::SUCCESS))
}

/// The group's config, or Java's defaults for a group that exists without one.
async fn config_of(conn: &Conn<Remoting>, group: &str) -> Result<SubscriptionGroupConfig, Refusal> {
    if let Some(config) = conn.ctx.core.group_configs.get(group) {
        return Ok(config);
    }
    match conn.ctx.core.group_info(group).await? {
        Some(_) => Ok(SubscriptionGroupConfig::defaults(group)),
        None => Err(Refusal::new(
            response::SUBSCRIPTION_GROUP_NOT_EXIST,
            "No group in this broker",
        )),
    }
}

pub async fn group_config(conn: &Rc<Conn<Remoting>>, req: &RemotingCommand) -> Handler {
    let group = Fields(&req.ext).str(&["group"])?.to_string();
    let config = config_of(conn, &group).await?;
    Ok(RemotingCommand::response_to(req, response::SUCCESS)
        .with_body(config.to_json().to_string().into_bytes()))
}

pub async fn all_group_configs(conn: &Rc<Conn<Remoting>>, req: &RemotingCommand) -> Handler {
    let core = &conn.ctx.core;
    let mut configs = core.group_configs.list();
    let configured: std::collections::BTreeSet<String> =
        configs.iter().map(|c| c.group_name.clone()).collect();
    for info in core.list_groups().await? {
        if !configured.contains(&info.name) {
            configs.push(SubscriptionGroupConfig::defaults(&info.name));
        }
    }
    configs.sort_by(|a, b| a.group_name.cmp(&b.group_name));
    let body = admin_bodies::subscription_group_wrapper(
        &configs,
        core.group_configs.version(),
        crate::core::now_ms(),
    );
    Ok(RemotingCommand::response_to(req, response::SUCCESS)
        .with_ext("totalGroupNum", configs.len())
        .with_body(body))
}

pub async fn delete_group(conn: &Rc<Conn<Remoting>>, req: &RemotingCommand) -> Handler {
    let f = Fields(&req.ext);
    let group = f.str(&["groupName"])?.to_string();
    Core::check_group(&group)?;
    let core = &conn.ctx.core;
    core.unconfigure_group(&group).await?;
    if f.opt_bool(&["cleanOffset"])?.unwrap_or(false) {
        core.delete_group(&group).await?;
    }
    Ok(RemotingCommand::response_to(req, response::SUCCESS))
}

/// This shard's queues of `topic`: `(its message queue, the topic's queue)`.
fn local_queues(conn: &Conn<Remoting>, topic: &str) -> Result<Vec<(MessageQueue, u32)>, Refusal> {
    let shard = &conn.proto.shard;
    let queues = conn.ctx.core.topic(topic)?.queues;
    Ok((0..shard.queues.local_count(topic, queues))
        .filter_map(|local| {
            let global = shard.queues.global(topic, local, queues)?;
            let mq = MessageQueue {
                broker_name: shard.broker_name.clone(),
                queue_id: local as i32,
                topic: topic.to_string(),
            };
            Some((mq, global))
        })
        .collect())
}

/// When the record before `end` was stored (the last of `..end`), 0 when there is none.
async fn last_store_time(core: &Core, topic: &str, queue: u32, end: u64) -> Result<i64, Refusal> {
    let Some(offset) = end.checked_sub(1) else {
        return Ok(0);
    };
    let answer = core
        .queue_op(topic, queue, QueueOp::StoreTimeAt { offset })
        .await?;
    Ok(match answer {
        QueueAnswer::Time(Some(ms)) => ms as i64,
        _ => 0,
    })
}

pub async fn topic_stats(conn: &Rc<Conn<Remoting>>, req: &RemotingCommand) -> Handler {
    let topic = Fields(&req.ext).str(&["topic"])?.to_string();
    let core = &conn.ctx.core;
    let mut offsets = Vec::new();
    for (mq, queue) in local_queues(conn, &topic)? {
        let (min, max) = core.queue_offsets(&topic, queue).await?;
        let last = last_store_time(core, &topic, queue, max).await?;
        let offset = TopicOffset {
            min_offset: min as i64,
            max_offset: max as i64,
            last_update_timestamp: last,
        };
        offsets.push((mq, offset));
    }
    Ok(RemotingCommand::response_to(req, response::SUCCESS)
        .with_body(admin_bodies::topic_stats_table(&offsets, 0.0)))
}

/// The topics GET_CONSUME_STATS covers: its `topicList`, else its `topic`, else every topic the
/// group subscribes to.
fn stats_topics(f: &Fields<'_>, info: Option<&GroupInfo>) -> Result<Vec<String>, Refusal> {
    let listed: std::collections::BTreeSet<String> = f
        .opt_str(&["topicList"])
        .unwrap_or("")
        .split(';')
        .filter(|t| !t.trim().is_empty())
        .map(|t| t.trim().to_string())
        .collect();
    if listed.len() > STATS_TOPICS_MAX {
        return Err(Refusal::new(
            response::INVALID_PARAMETER,
            format!(
                "topicList names {} topics; at most {STATS_TOPICS_MAX}",
                listed.len()
            ),
        ));
    }
    if !listed.is_empty() {
        return Ok(listed.into_iter().collect());
    }
    if let Some(topic) = f.opt_str(&["topic"]).filter(|t| !t.trim().is_empty()) {
        return Ok(vec![topic.trim().to_string()]);
    }
    Ok(info
        .map(|i| i.subscriptions.iter().map(|s| s.topic.clone()).collect())
        .unwrap_or_default())
}

pub async fn consume_stats(conn: &Rc<Conn<Remoting>>, req: &RemotingCommand) -> Handler {
    let f = Fields(&req.ext);
    let group = f.str(&["consumerGroup"])?.to_string();
    Core::check_group(&group)?;
    let core = &conn.ctx.core;
    let info = core.group_info(&group).await?;
    let mut offsets = Vec::new();
    for topic in stats_topics(&f, info.as_ref())? {
        // A topic that does not exist is left out, as Java leaves it out.
        let Ok(queues) = local_queues(conn, &topic) else {
            continue;
        };
        for (mq, queue) in queues {
            let (_, max) = core.queue_offsets(&topic, queue).await?;
            let query = QueueOp::Query {
                group: group.clone(),
            };
            let committed = core.offset_op(&topic, queue, query).await?.unwrap_or(0);
            let last = last_store_time(core, &topic, queue, committed).await?;
            let progress = OffsetWrapper {
                broker_offset: max as i64,
                consumer_offset: committed as i64,
                pull_offset: committed as i64,
                last_timestamp: last,
            };
            offsets.push((mq, progress));
        }
    }
    Ok(RemotingCommand::response_to(req, response::SUCCESS)
        .with_body(admin_bodies::consume_stats(&offsets, 0.0)))
}

pub async fn consumer_connections(conn: &Rc<Conn<Remoting>>, req: &RemotingCommand) -> Handler {
    let group = Fields(&req.ext).str(&["consumerGroup"])?.to_string();
    Core::check_group(&group)?;
    let not_online = || {
        Refusal::new(
            response::CONSUMER_NOT_ONLINE,
            format!("the consumer group[{group}] not online"),
        )
    };
    let info = conn
        .ctx
        .core
        .group_info(&group)
        .await?
        .ok_or_else(not_online)?;
    if info.members.is_empty() {
        return Err(not_online());
    }
    let shard = &conn.proto.shard;
    let metas: Vec<_> = info
        .members
        .iter()
        .map(|m| (m, shard.member(&group, &m.member_id)))
        .collect();
    let first = metas.iter().find_map(|(_, meta)| meta.clone());
    let connections = metas
        .iter()
        .map(|(m, meta)| Connection {
            client_id: m.member_id.clone(),
            // A native member, or one this shard has not heard: no address it could name.
            client_addr: meta
                .as_ref()
                .map(|k| k.addr.to_string())
                .unwrap_or_default(),
            language: meta.as_ref().map_or("RUST".into(), |k| k.language.clone()),
            version: meta.as_ref().map_or(0, |k| k.version),
        })
        .collect();
    let subscriptions = info
        .subscriptions
        .iter()
        .map(|s| SubscriptionData {
            topic: s.topic.clone(),
            sub_string: s.filter.expression.clone(),
            expression_type: match s.filter.kind {
                FilterKind::Sql92 => "SQL92",
                FilterKind::Tag => "TAG",
            },
            sub_version: 0,
        })
        .collect();
    let broadcasting = info.mode == Mode::Broadcasting;
    let body = ConsumerConnection {
        connections,
        subscriptions,
        consume_type: first
            .as_ref()
            .map_or("CONSUME_PASSIVELY", |m| m.consume_type),
        message_model: if broadcasting {
            "BROADCASTING"
        } else {
            "CLUSTERING"
        },
        consume_from_where: first
            .as_ref()
            .map_or("CONSUME_FROM_LAST_OFFSET", |m| m.consume_from_where),
    };
    Ok(RemotingCommand::response_to(req, response::SUCCESS)
        .with_body(admin_bodies::consumer_connection(&body)))
}
