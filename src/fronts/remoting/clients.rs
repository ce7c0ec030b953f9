//! Client requests over remoting: heartbeats (34) that make a client a member of its consumer
//! groups, unregistering (35), the group's client list (38) that client-side rebalancing works
//! from, the subscription check SQL92 consumers send first (46), and the queue locks of orderly
//! consumption (41, 42).
//!
//! A heartbeat joins every consumer group it lists with the client id as member id and a
//! 120 s session (RocketMQ's channel expiry), through the group's coordinator shard; the
//! broker's own assignment is not used (RocketMQ 4.x clients divide the queues themselves from
//! the member list), but membership changes reach the clients at once as
//! NOTIFY_CONSUMER_IDS_CHANGED. It also creates the group's `%RETRY%<group>` topic (one queue),
//! as the Java broker does, and remembers each subscription on this shard for pulls that do not
//! carry their expression. The response carries the broker's version, which Java clients take
//! as the broker's (SQL92 needs ≥ 4.1.0).

use std::rc::Rc;
use std::time::Duration;

use shardmq_protocol::remoting::bodies::{
    self, check_client_subscription, HeartbeatData, LockBatchBody, MessageQueue, SubscriptionData,
};
use shardmq_protocol::remoting::codes::response;
use shardmq_protocol::remoting::ext::Fields;
use shardmq_protocol::remoting::RemotingCommand;

use super::connection::Remoting;
use super::dispatch::Handler;
use super::error::Refusal;
use super::state::MemberMeta;
use crate::core::filter::Filter;
use crate::core::groups::{FilterKind, FilterSpec, JoinCall, Mode, Strategy, Subscription};
use crate::server::connection::Conn;

/// How long a client that stops heartbeating stays a member (RocketMQ's 120 s).
const CLIENT_SESSION: Duration = Duration::from_secs(120);
/// Queues of a group's retry topic.
const RETRY_QUEUES: u32 = 1;

pub fn filter_of(s: &SubscriptionData) -> FilterSpec {
    FilterSpec {
        kind: if s.expression_type == "SQL92" {
            FilterKind::Sql92
        } else {
            FilterKind::Tag
        },
        expression: s.sub_string.clone(),
    }
}

pub async fn heartbeat(conn: &Rc<Conn<Remoting>>, req: &RemotingCommand) -> Handler {
    let core = &conn.ctx.core;
    let data = HeartbeatData::parse(&req.body).map_err(Refusal::system)?;
    for consumer in &data.consumers {
        let group = &consumer.group_name;
        crate::core::Core::check_group(group)?;
        // A group its config disables does not join; Java answers the heartbeat all the same
        // and refuses the group's pulls (NO_PERMISSION), as `pull` does here.
        if let Err(refused) = core.check_may_consume(group, consumer.broadcasting) {
            tracing::debug!(%group, reason = %refused, "heartbeat of a disabled group not joined");
            continue;
        }
        core.ensure_system_topic(&format!("%RETRY%{group}"), RETRY_QUEUES)
            .await?;
        let subscriptions: Vec<Subscription> = consumer
            .subscriptions
            .iter()
            .map(|s| Subscription {
                topic: s.topic.clone(),
                filter: filter_of(s),
            })
            .collect();
        let call = JoinCall {
            group: group.clone(),
            member_id: data.client_id.clone(),
            mode: if consumer.broadcasting {
                Mode::Broadcasting
            } else {
                Mode::Clustering
            },
            strategy: Strategy::Average,
            subscriptions: subscriptions.clone(),
            session_timeout: CLIENT_SESSION,
            notify: Some(conn.proto.notify),
            protocol: "remoting",
        };
        core.join_group(call).await.map_err(|e| match e {
            crate::core::CoreError::InvalidArgument(why) => {
                Refusal::new(response::SUBSCRIPTION_PARSE_FAILED, why)
            }
            other => Refusal::from(other),
        })?;
        for s in subscriptions {
            conn.proto
                .shard
                .remember_subscription(group, &s.topic, s.filter);
        }
        conn.proto
            .clients
            .borrow_mut()
            .insert((group.clone(), data.client_id.clone()));
        let meta = MemberMeta {
            addr: conn.proto.peer_addr,
            language: req.language.clone(),
            version: req.version,
            consume_type: consumer.consume_type,
            consume_from_where: consumer.consume_from_where,
        };
        conn.proto
            .shard
            .remember_member(group, &data.client_id, meta);
    }
    Ok(RemotingCommand::response_to(req, response::SUCCESS))
}

pub async fn unregister(conn: &Rc<Conn<Remoting>>, req: &RemotingCommand) -> Handler {
    let f = Fields(&req.ext);
    let client = f.str(&["clientID"])?.to_string();
    if let Some(group) = f.opt_str(&["consumerGroup"]).filter(|g| !g.is_empty()) {
        conn.ctx.core.leave_group(group, &client, None).await?;
        conn.proto
            .shard
            .forget_member(group, &client, conn.proto.peer_addr);
        conn.proto
            .clients
            .borrow_mut()
            .remove(&(group.to_string(), client));
    }
    Ok(RemotingCommand::response_to(req, response::SUCCESS))
}

pub async fn consumer_list(conn: &Rc<Conn<Remoting>>, req: &RemotingCommand) -> Handler {
    let group = Fields(&req.ext).str(&["consumerGroup"])?.to_string();
    let info = conn.ctx.core.group_info(&group).await?;
    let mut ids: Vec<String> = info
        .map(|i| i.members.into_iter().map(|m| m.member_id).collect())
        .unwrap_or_default();
    if ids.is_empty() {
        return Err(Refusal::system(format!(
            "no consumer for this group, {group}"
        )));
    }
    ids.sort();
    Ok(RemotingCommand::response_to(req, response::SUCCESS)
        .with_body(bodies::consumer_id_list(&ids)))
}

pub async fn check_client_config(_conn: &Rc<Conn<Remoting>>, req: &RemotingCommand) -> Handler {
    let subscription = check_client_subscription(&req.body).map_err(Refusal::system)?;
    if let Some(s) = subscription {
        Filter::parse(&filter_of(&s))
            .map_err(|e| Refusal::new(response::SUBSCRIPTION_PARSE_FAILED, e))?;
    }
    Ok(RemotingCommand::response_to(req, response::SUCCESS))
}

/// The queues of a lock body that are this shard's, as `(message queue, topic, global queue)`.
fn own_queues(conn: &Conn<Remoting>, body: &LockBatchBody) -> Vec<(MessageQueue, u32)> {
    let shard = &conn.proto.shard;
    body.queues
        .iter()
        .filter(|mq| mq.broker_name == shard.broker_name)
        .filter_map(|mq| {
            let topic = conn.ctx.core.topics.get(&mq.topic)?;
            let local = u32::try_from(mq.queue_id).ok()?;
            let global = shard.queues.global(&mq.topic, local, topic.queues)?;
            Some((mq.clone(), global))
        })
        .collect()
}

pub async fn lock(conn: &Rc<Conn<Remoting>>, req: &RemotingCommand, take: bool) -> Handler {
    let body = LockBatchBody::parse(&req.body).map_err(Refusal::system)?;
    let mine = own_queues(conn, &body);
    let wanted: Vec<(String, u32)> = mine.iter().map(|(mq, g)| (mq.topic.clone(), *g)).collect();
    let held = conn
        .ctx
        .core
        .lock_queues(&body.consumer_group, &body.client_id, &wanted, take)
        .await?;
    let response = RemotingCommand::response_to(req, response::SUCCESS);
    if !take {
        return Ok(response);
    }
    let locked: Vec<MessageQueue> = mine
        .into_iter()
        .filter(|(mq, g)| held.contains(&(mq.topic.clone(), *g)))
        .map(|(mq, _)| mq)
        .collect();
    Ok(response.with_body(bodies::lock_reply(&locked)))
}
