//! Remoting requests by code, as calls of the broker core; one handler per request, in the
//! file of its family. An unknown code gets REQUEST_CODE_NOT_SUPPORTED with Java's remark; the
//! codes of the message kinds (send back, transactions, delay, query) will go here with them.

use std::rc::Rc;

use shardmq_protocol::remoting::codes::{request as code, response};
use shardmq_protocol::remoting::ext::Fields;
use shardmq_protocol::remoting::RemotingCommand;
use shardmq_shards::durability::Appended;

use super::connection::Remoting;
use super::error::Refusal;
use super::{admin, clients, group_admin, offsets, pull, send};
use crate::server::connection::{Conn, LaterReply};

/// What a request is answered with.
pub enum Answer {
    Now(RemotingCommand),
    /// Written once the log is synced to the position (a send under `flush = sync`).
    AfterSync(RemotingCommand, Appended),
    /// A parked long poll.
    Later(LaterReply),
}

/// The result of most handlers.
pub type Handler = Result<RemotingCommand, Refusal>;

/// The response that refuses `req`.
pub fn refused(req: &RemotingCommand, refusal: Refusal) -> RemotingCommand {
    RemotingCommand::response_to(req, refusal.code).with_remark(refusal.remark)
}

/// The request's `topic` and `queueId` (the client's number on this shard) as the topic's name
/// and queue.
pub fn global_queue(conn: &Conn<Remoting>, f: &Fields<'_>) -> Result<(String, u32), Refusal> {
    let name = f.str(&["topic", "b"])?;
    let local: i64 = f.num(&["queueId", "e"])?;
    let topic = conn.ctx.core.topic(name)?;
    let shard = &conn.proto.shard;
    u32::try_from(local)
        .ok()
        .and_then(|local| shard.queues.global(name, local, topic.queues))
        .map(|global| (topic.name.clone(), global))
        .ok_or_else(|| {
            Refusal::system(format!(
                "queueId[{local}] is illegal, topic {} has {} queues on broker {}",
                topic.name,
                shard.queues.local_count(name, topic.queues),
                shard.broker_name
            ))
        })
}

/// The first ACL refusal on a connection is a warning; the rest (a client retrying with the
/// same wrong key) only debug lines, so a refused client cannot flood the log.
fn log_acl_refusal(conn: &Conn<Remoting>, req: &RemotingCommand, refusal: &Refusal) {
    let (peer, code, reason) = (conn.proto.peer_addr, req.code, &refusal.remark);
    if conn
        .proto
        .acl_refusals
        .replace(conn.proto.acl_refusals.get() + 1)
        == 0
    {
        tracing::warn!(%peer, code, %reason, "remoting request refused by the ACL (further refusals on this connection are logged at debug)");
    } else {
        tracing::debug!(%peer, code, %reason, "remoting request refused by the ACL");
    }
}

pub async fn dispatch(conn: &Rc<Conn<Remoting>>, req: RemotingCommand) -> Answer {
    if let Some(acl) = &conn.ctx.acl {
        if let Err(refusal) = super::access::check(acl, &req) {
            log_acl_refusal(conn, &req, &refusal);
            return Answer::Now(refused(&req, refusal));
        }
    }
    let result = match req.code {
        code::SEND_MESSAGE | code::SEND_MESSAGE_V2 | code::SEND_BATCH_MESSAGE => {
            return send::send(conn, &req).await
        }
        code::PULL_MESSAGE | code::LITE_PULL_MESSAGE => return pull::pull(conn, req).await,
        code::QUERY_CONSUMER_OFFSET => offsets::query_consumer_offset(conn, &req).await,
        code::UPDATE_CONSUMER_OFFSET => offsets::update_consumer_offset(conn, &req).await,
        code::GET_MAX_OFFSET => offsets::queue_offset(conn, &req, true).await,
        code::GET_MIN_OFFSET => offsets::queue_offset(conn, &req, false).await,
        code::SEARCH_OFFSET_BY_TIMESTAMP => offsets::search_offset(conn, &req).await,
        code::GET_EARLIEST_MSG_STORETIME => offsets::earliest_store_time(conn, &req).await,
        code::HEART_BEAT => clients::heartbeat(conn, &req).await,
        code::UNREGISTER_CLIENT => clients::unregister(conn, &req).await,
        code::GET_CONSUMER_LIST_BY_GROUP => clients::consumer_list(conn, &req).await,
        code::CHECK_CLIENT_CONFIG => clients::check_client_config(conn, &req).await,
        code::LOCK_BATCH_MQ => clients::lock(conn, &req, true).await,
        code::UNLOCK_BATCH_MQ => clients::lock(conn, &req, false).await,
        code::UPDATE_AND_CREATE_TOPIC => admin::create_topic(conn, &req).await,
        code::DELETE_TOPIC_IN_BROKER => admin::delete_topic(conn, &req).await,
        code::GET_ALL_TOPIC_CONFIG => admin::all_topic_config(conn, &req).await,
        code::GET_BROKER_RUNTIME_INFO => admin::runtime_info(conn, &req).await,
        code::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => group_admin::update_group(conn, &req).await,
        code::GET_ALL_SUBSCRIPTIONGROUP_CONFIG => group_admin::all_group_configs(conn, &req).await,
        code::GET_SUBSCRIPTIONGROUP_CONFIG => group_admin::group_config(conn, &req).await,
        code::DELETE_SUBSCRIPTIONGROUP => group_admin::delete_group(conn, &req).await,
        code::GET_TOPIC_STATS_INFO => group_admin::topic_stats(conn, &req).await,
        code::GET_CONSUME_STATS => group_admin::consume_stats(conn, &req).await,
        code::GET_CONSUMER_CONNECTION_LIST => group_admin::consumer_connections(conn, &req).await,
        other => Err(Refusal::new(
            response::REQUEST_CODE_NOT_SUPPORTED,
            format!(" request type {other} not supported"),
        )),
    };
    Answer::Now(result.unwrap_or_else(|refusal| refused(&req, refusal)))
}
