//! ACL on the native protocol (`crate::acl`). The Hello proves an account once, on the shard
//! that accepts the connection ([`authenticate`]); every request after it is held to that
//! account's permissions before it is dispatched ([`authorize`]), so a refused request does
//! nothing.
//!
//! | request | needs |
//! |---|---|
//! | `Produce` | PUB on the topic |
//! | `Pull` | SUB on the topic; with an offset commit, SUB on the group too |
//! | `JoinGroup`, `LockQueues` | SUB on the group and on every topic named |
//! | `CommitOffset`, `QueryOffset` | SUB on the group and the topic |
//! | `LeaveGroup`, `GroupMembers`, `DescribeGroup` | SUB on the group |
//! | `QueueOffsets`, `SearchOffset`, `TopicStatus` | SUB on the topic |
//! | `CreateTopic`, `UpdateTopic`, `DeleteTopic`, `ResetOffsets`, `DeleteGroup` | admin |
//! | `ListTopics`, `ListGroups`, `ShardMap`, `ShardStats` | any account |

use std::sync::Arc;

use shardmq_protocol::auth::{hello_signature, HELLO_CLOCK_SKEW_MS_MAX};
use shardmq_protocol::messages::Hello;

use super::request::Request;
use crate::acl::{Account, Acl, Denied, Need, Resource};
use crate::core::queue_ops::offset_owner_group;

/// The account a Hello proves, checked against the broker's clock `now_ms`.
pub fn authenticate(acl: &Acl, hello: &Hello, now_ms: u64) -> Result<Arc<Account>, Denied> {
    let Some(credentials) = &hello.credentials else {
        return Err(Denied::NoCredentials);
    };
    let account = acl.account(&credentials.access_key)?;
    let skew_ms = now_ms.abs_diff(credentials.timestamp_ms);
    if skew_ms > HELLO_CLOCK_SKEW_MS_MAX {
        return Err(Denied::ClockSkew {
            skew_ms,
            max_ms: HELLO_CLOCK_SKEW_MS_MAX,
        });
    }
    let expected = hello_signature(
        account.secret_key.expose(),
        &account.access_key,
        &hello.client_name,
        credentials.timestamp_ms,
        credentials.nonce,
    );
    if !shardmq_protocol::auth::constant_time_eq(&expected, &credentials.signature) {
        return Err(Denied::BadSignature(
            shardmq_protocol::text::Shown(&account.access_key).to_string(),
        ));
    }
    Ok(account.clone())
}

/// Whether `account` may send `request` (see the table above).
pub fn authorize(account: &Account, request: &Request) -> Result<(), Denied> {
    let sub = Need::Subscribe;
    let topic = |name: &str| account.may(Resource::topic(name), sub);
    let group = |name: &str| account.may(Resource::Group(offset_owner_group(name)), sub);
    match request {
        Request::Produce { request, .. } => {
            account.may(Resource::topic(&request.topic), Need::Publish)
        }
        Request::Pull(r) => {
            topic(&r.topic)?;
            r.commit.as_ref().map_or(Ok(()), |c| group(&c.group))
        }
        Request::JoinGroup(r) => {
            group(&r.group)?;
            r.subscriptions.iter().try_for_each(|s| topic(&s.topic))
        }
        Request::LockQueues(r) => {
            group(&r.group)?;
            r.queues.iter().try_for_each(|q| topic(&q.topic))
        }
        Request::CommitOffset(r) => group(&r.group).and_then(|()| topic(&r.topic)),
        Request::QueryOffset(r) => group(&r.group).and_then(|()| topic(&r.topic)),
        Request::LeaveGroup(r) => group(&r.group),
        Request::GroupMembers(r) => group(&r.group),
        Request::DescribeGroup(r) => group(&r.group),
        Request::QueueOffsets(r) => topic(&r.topic),
        Request::SearchOffset(r) => topic(&r.topic),
        Request::TopicStatus(r) => topic(&r.name),
        Request::CreateTopic(_) => account.may_administer("creating a topic"),
        Request::UpdateTopic(_) => account.may_administer("changing a topic"),
        Request::DeleteTopic(_) => account.may_administer("deleting a topic"),
        Request::ResetOffsets(_) => account.may_administer("resetting offsets"),
        Request::DeleteGroup(_) => account.may_administer("deleting a group"),
        Request::ListTopics | Request::ListGroups | Request::ShardMap | Request::ShardStats => {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bytes::BytesMut;
    use shardmq_protocol::messages::{HelloCredentials, Produce, TopicStatusRequest};

    use super::*;
    use crate::acl::{Perm, Secret};

    fn publisher() -> Account {
        Account {
            access_key: "writer".into(),
            secret_key: Secret::new("writer-secret".into()),
            admin: false,
            default_topic_perm: Perm::DENY,
            default_group_perm: Perm::DENY,
            topic_perms: HashMap::from([("orders".to_string(), Perm::PUB)]),
            group_perms: HashMap::new(),
        }
    }

    fn hello(secret: &str, timestamp_ms: u64) -> Hello {
        let signature = hello_signature(secret, "writer", "app", timestamp_ms, 7);
        Hello {
            client_name: "app".into(),
            wanted_shard: None,
            credentials: Some(HelloCredentials {
                access_key: "writer".into(),
                timestamp_ms,
                nonce: 7,
                signature: signature.to_vec(),
            }),
        }
    }

    #[test]
    fn a_hello_proves_its_account_only_with_the_right_secret_and_clock() {
        let acl = Acl::new([publisher()]);
        let now = 1_800_000_000_000;
        let account = authenticate(&acl, &hello("writer-secret", now), now).unwrap();
        assert_eq!(account.access_key, "writer");
        let wrong = authenticate(&acl, &hello("guess", now), now).unwrap_err();
        assert!(matches!(wrong, Denied::BadSignature(_)), "{wrong}");
        let late = now + HELLO_CLOCK_SKEW_MS_MAX + 1;
        let stale = authenticate(&acl, &hello("writer-secret", now), late).unwrap_err();
        assert!(matches!(stale, Denied::ClockSkew { .. }), "{stale}");
        let mut anonymous = hello("writer-secret", now);
        anonymous.credentials = None;
        assert_eq!(
            authenticate(&acl, &anonymous, now).unwrap_err(),
            Denied::NoCredentials
        );
        let mut renamed = hello("writer-secret", now);
        renamed.client_name = "other".into();
        assert!(authenticate(&acl, &renamed, now).is_err());
    }

    #[test]
    fn requests_are_held_to_the_account() {
        let account = publisher();
        let produce = |topic: &str| Request::Produce {
            request: Produce {
                topic: topic.into(),
                queue_id: 0,
            },
            batch: BytesMut::new(),
        };
        assert!(authorize(&account, &produce("orders")).is_ok());
        assert!(authorize(&account, &produce("payments")).is_err());
        let status = Request::TopicStatus(TopicStatusRequest {
            name: "orders".into(),
        });
        assert!(authorize(&account, &status).is_err(), "PUB is not SUB");
        assert!(authorize(&account, &Request::ListTopics).is_ok());
        let delete = Request::DeleteTopic(shardmq_protocol::messages::DeleteTopic {
            name: "orders".into(),
        });
        assert!(matches!(
            authorize(&account, &delete),
            Err(Denied::NeedsAdmin { .. })
        ));
    }
}
