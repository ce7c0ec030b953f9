//! ACL on the remoting port (`crate::acl`), as the Java broker's `PlainAccessValidator` does it:
//! every request carries `AccessKey` and `Signature` (`shardmq_protocol::auth`), verified before
//! the request is dispatched, and is then held to the account's permissions. A refused request
//! gets NO_PERMISSION with the reason as its remark, and nothing of it is done.
//!
//! | request | needs (Java's, plus the rows marked *) |
//! |---|---|
//! | SEND_MESSAGE, _V2, SEND_BATCH_MESSAGE | PUB on the topic; to a retry topic, SUB on the producer group |
//! | CONSUMER_SEND_MSG_BACK | SUB on the group |
//! | PULL_MESSAGE, LITE_PULL_MESSAGE* | SUB on the topic and the consumer group |
//! | QUERY_MESSAGE, VIEW_MESSAGE_BY_ID* | SUB on the topic (VIEW: none named, so any account) |
//! | HEART_BEAT | SUB on every consumer group and subscribed topic in the body |
//! | UNREGISTER_CLIENT, GET_CONSUMER_LIST_BY_GROUP | SUB on the consumer group |
//! | UPDATE_CONSUMER_OFFSET, QUERY_CONSUMER_OFFSET* | SUB on the group and the topic |
//! | LOCK_BATCH_MQ*, UNLOCK_BATCH_MQ* | SUB on the group in the body |
//! | UPDATE_AND_CREATE_TOPIC, DELETE_TOPIC_IN_BROKER, UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, DELETE_SUBSCRIPTIONGROUP, UPDATE_BROKER_CONFIG | admin |
//! | anything else | a valid signature |
//!
//! A field the table names but the request lacks names nothing to check, as in Java (a
//! producer's UNREGISTER_CLIENT has no consumer group); a handler that needs the field refuses
//! the request itself.

use shardmq_protocol::auth::{remoting_signature_matches, ACCESS_KEY, SIGNATURE};
use shardmq_protocol::remoting::bodies::{HeartbeatData, LockBatchBody};
use shardmq_protocol::remoting::codes::{request as code, response};
use shardmq_protocol::remoting::RemotingCommand;
use shardmq_protocol::text::Shown;

use super::error::Refusal;
use crate::acl::{Account, Acl, Denied, Need, Resource, RETRY_PREFIX};

/// Java's code for UPDATE_BROKER_CONFIG (not served here; still admin-only).
const UPDATE_BROKER_CONFIG: i32 = 25;

/// Whether `req` is signed by an account of `acl` that may do what it asks.
pub fn check(acl: &Acl, req: &RemotingCommand) -> Result<(), Refusal> {
    authenticate(acl, req)
        .and_then(|account| authorize(account, req))
        .map_err(|denied| Refusal::new(response::NO_PERMISSION, denied))
}

fn authenticate<'a>(acl: &'a Acl, req: &RemotingCommand) -> Result<&'a Account, Denied> {
    let (Some(access_key), Some(signature)) = (req.ext.get(ACCESS_KEY), req.ext.get(SIGNATURE))
    else {
        return Err(Denied::NoCredentials);
    };
    let account = acl.account(access_key)?;
    let secret = account.secret_key.expose();
    if remoting_signature_matches(secret, &req.ext, req.version, &req.body, signature) {
        Ok(account)
    } else {
        Err(Denied::BadSignature(Shown(access_key).to_string()))
    }
}

fn authorize(account: &Account, req: &RemotingCommand) -> Result<(), Denied> {
    let field = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| req.ext.get(*k))
            .map(String::as_str)
    };
    let sub = |resource: Resource<'_>| account.may(resource, Need::Subscribe);
    let group = |keys: &[&str]| field(keys).map_or(Ok(()), |name| sub(Resource::Group(name)));
    let topic = |keys: &[&str]| field(keys).map_or(Ok(()), |name| sub(Resource::topic(name)));
    match req.code {
        code::SEND_MESSAGE | code::SEND_MESSAGE_V2 | code::SEND_BATCH_MESSAGE => {
            match field(&["topic", "b"]) {
                Some(name) if name.starts_with(RETRY_PREFIX) => group(&["producerGroup", "a"]),
                Some(name) => account.may(Resource::Topic(name), Need::Publish),
                None => Ok(()),
            }
        }
        code::CONSUMER_SEND_MSG_BACK => group(&["group"]),
        code::PULL_MESSAGE | code::LITE_PULL_MESSAGE => {
            topic(&["topic"]).and_then(|()| group(&["consumerGroup"]))
        }
        code::QUERY_MESSAGE => topic(&["topic"]),
        code::HEART_BEAT => heartbeat(account, &req.body),
        code::UNREGISTER_CLIENT | code::GET_CONSUMER_LIST_BY_GROUP => group(&["consumerGroup"]),
        code::UPDATE_CONSUMER_OFFSET | code::QUERY_CONSUMER_OFFSET => {
            group(&["consumerGroup"]).and_then(|()| topic(&["topic"]))
        }
        code::LOCK_BATCH_MQ | code::UNLOCK_BATCH_MQ => match LockBatchBody::parse(&req.body) {
            Ok(body) => sub(Resource::Group(&body.consumer_group)),
            Err(_) => Ok(()), // the handler refuses the body with its own reason
        },
        code::UPDATE_AND_CREATE_TOPIC => account.may_administer("UPDATE_AND_CREATE_TOPIC"),
        code::DELETE_TOPIC_IN_BROKER => account.may_administer("DELETE_TOPIC_IN_BROKER"),
        code::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => {
            account.may_administer("UPDATE_AND_CREATE_SUBSCRIPTIONGROUP")
        }
        code::DELETE_SUBSCRIPTIONGROUP => account.may_administer("DELETE_SUBSCRIPTIONGROUP"),
        UPDATE_BROKER_CONFIG => account.may_administer("UPDATE_BROKER_CONFIG"),
        _ => Ok(()),
    }
}

/// A heartbeat needs SUB on each consumer's group and subscribed topics; a producer's
/// heartbeat only the signature. A body that does not parse is the handler's to refuse.
fn heartbeat(account: &Account, body: &[u8]) -> Result<(), Denied> {
    let Ok(heartbeat) = HeartbeatData::parse(body) else {
        return Ok(());
    };
    for consumer in &heartbeat.consumers {
        account.may(Resource::Group(&consumer.group_name), Need::Subscribe)?;
        for subscription in &consumer.subscriptions {
            account.may(Resource::topic(&subscription.topic), Need::Subscribe)?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;
