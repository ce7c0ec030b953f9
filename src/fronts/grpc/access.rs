//! ACL on the gRPC port (`crate::acl`): with an ACL every call must carry the 5.x
//! `authorization` header (`shardmq_protocol::auth::grpc_authorization`), signed over its
//! `x-mq-date-time` by a known account, and is then held to the account's permissions:
//!
//! | call | needs |
//! |---|---|
//! | SendMessage | PUB on the topic |
//! | QueryRoute, Heartbeat, Telemetry, NotifyClientTermination | a valid signature |
//!
//! A refused call gets UNAUTHORIZED (no or bad credentials) or FORBIDDEN (no permission) in its
//! status, and nothing of it is done. The clock in `x-mq-date-time` is not held to a window: a
//! Telemetry stream's is fixed when it opens and the stream lives for hours (the same replay
//! exposure as RocketMQ's own ACL; TLS is the answer to an eavesdropper).

use shardmq_protocol::auth::{grpc_authorization, grpc_signature_matches};
use shardmq_protocol::text::Shown;
use tonic::metadata::MetadataMap;

use super::status::Refusal;
use crate::acl::{Account, Acl, Denied};

pub const AUTHORIZATION: &str = "authorization";
pub const DATE_TIME: &str = "x-mq-date-time";

/// The account that signed a call with these headers.
pub fn authenticate<'a>(acl: &'a Acl, headers: &MetadataMap) -> Result<&'a Account, Refusal> {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(authorization), Some(date_time)) = (header(AUTHORIZATION), header(DATE_TIME)) else {
        return Err(Denied::NoCredentials.into());
    };
    let Some(auth) = grpc_authorization(authorization) else {
        return Err(Denied::NoCredentials.into());
    };
    let account = acl.account(auth.access_key)?;
    if grpc_signature_matches(account.secret_key.expose(), date_time, auth.signature) {
        Ok(account)
    } else {
        Err(Denied::BadSignature(Shown(auth.access_key).to_string()).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::{Perm, Secret};
    use shardmq_grpc_proto::v2::Code;
    use shardmq_protocol::auth::grpc_signature;

    fn acl() -> Acl {
        Acl::new([Account {
            access_key: "ak".into(),
            secret_key: Secret::new("sk".into()),
            admin: false,
            default_topic_perm: Perm::parse("PUB").unwrap(),
            default_group_perm: Perm::parse("SUB").unwrap(),
            topic_perms: Default::default(),
            group_perms: Default::default(),
        }])
    }

    fn headers(access_key: &str, secret: &str) -> MetadataMap {
        let date = "20261204T101010Z";
        let mut h = MetadataMap::new();
        h.insert(DATE_TIME, date.parse().unwrap());
        let value = format!(
            "MQv2-HMAC-SHA1 Credential={access_key}, SignedHeaders=x-mq-date-time, Signature={}",
            grpc_signature(secret, date)
        );
        h.insert(AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn only_a_known_key_with_its_secret_is_let_in() {
        let acl = acl();
        assert_eq!(
            authenticate(&acl, &headers("ak", "sk")).unwrap().access_key,
            "ak"
        );
        for (key, secret) in [("ak", "wrong"), ("nobody", "sk")] {
            let refused = authenticate(&acl, &headers(key, secret)).unwrap_err();
            assert_eq!(refused.code, Code::Unauthorized, "{key}/{secret}");
        }
        let refused = authenticate(&acl, &MetadataMap::new()).unwrap_err();
        assert_eq!(refused.code, Code::Unauthorized);
        assert!(
            refused.message.contains("none were sent"),
            "{}",
            refused.message
        );
    }
}
