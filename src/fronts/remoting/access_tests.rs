use std::collections::HashMap;

use shardmq_protocol::auth::remoting_signature;

use super::*;
use crate::acl::{Perm, Secret};

fn acl() -> Acl {
    Acl::new([Account {
        access_key: "consumer".into(),
        secret_key: Secret::new("consumer-secret".into()),
        admin: false,
        default_topic_perm: Perm::DENY,
        default_group_perm: Perm::DENY,
        topic_perms: HashMap::from([
            ("orders".to_string(), Perm::SUB),
            ("audit".to_string(), Perm::PUB),
        ]),
        group_perms: HashMap::from([("billing".to_string(), Perm::SUB)]),
    }])
}

/// A request signed as the Java client's AclClientRPCHook signs it.
fn signed(code: i32, fields: &[(&str, &str)], body: &[u8], secret: &str) -> RemotingCommand {
    let mut req = RemotingCommand::request(code, 1).with_body(body.to_vec());
    for (k, v) in fields {
        req = req.with_ext(k, v);
    }
    req = req.with_ext(ACCESS_KEY, "consumer");
    let signature = remoting_signature(secret, &req.ext, req.version, &req.body);
    req.with_ext(SIGNATURE, signature)
}

fn refused(req: &RemotingCommand) -> String {
    let refusal = check(&acl(), req).unwrap_err();
    assert_eq!(refusal.code, response::NO_PERMISSION);
    refusal.remark
}

#[test]
fn a_request_without_a_valid_signature_is_refused_whatever_it_asks() {
    let get_max = |secret| signed(code::GET_MAX_OFFSET, &[("topic", "orders")], b"", secret);
    assert!(check(&acl(), &get_max("consumer-secret")).is_ok());
    assert!(refused(&get_max("guess")).contains("signature does not match"));
    let mut tampered = get_max("consumer-secret");
    tampered.ext.insert("topic".into(), "audit".into());
    assert!(refused(&tampered).contains("signature does not match"));
    let mut unsigned = get_max("consumer-secret");
    unsigned.ext.remove(SIGNATURE);
    assert!(refused(&unsigned).contains("none were sent"));
    let mut stranger = get_max("consumer-secret");
    stranger.ext.insert(ACCESS_KEY.into(), "stranger".into());
    assert!(refused(&stranger).contains("no ACL account"));
}

#[test]
fn the_body_is_signed_too() {
    let mut send = signed(
        code::SEND_MESSAGE_V2,
        &[("a", "p"), ("b", "audit")],
        b"payload",
        "consumer-secret",
    );
    assert!(check(&acl(), &send).is_ok());
    send.body = bytes::Bytes::from_static(b"payloaX");
    assert!(refused(&send).contains("signature does not match"));
}

#[test]
fn requests_are_held_to_their_topic_and_group() {
    let secret = "consumer-secret";
    let send = signed(code::SEND_MESSAGE_V2, &[("b", "orders")], b"x", secret);
    assert!(refused(&send).contains("no PUB permission on topic \"orders\""));
    let pull = |group| {
        signed(
            code::PULL_MESSAGE,
            &[("topic", "orders"), ("consumerGroup", group)],
            b"",
            secret,
        )
    };
    assert!(check(&acl(), &pull("billing")).is_ok());
    assert!(refused(&pull("other")).contains("group \"other\""));
    let retry_send = signed(
        code::SEND_MESSAGE,
        &[("topic", "%RETRY%billing"), ("producerGroup", "billing")],
        b"x",
        secret,
    );
    assert!(
        check(&acl(), &retry_send).is_ok(),
        "a retry topic is its group"
    );
    let heartbeat = br#"{"clientID":"c","producerDataSet":[],"consumerDataSet":[{"groupName":"billing","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","subscriptionDataSet":[{"topic":"audit","subString":"*"}]}]}"#;
    let beat = signed(code::HEART_BEAT, &[], heartbeat, secret);
    assert!(refused(&beat).contains("no SUB permission on topic \"audit\""));
    let create = signed(
        code::UPDATE_AND_CREATE_TOPIC,
        &[("topic", "t")],
        b"",
        secret,
    );
    assert!(refused(&create).contains("needs admin permission"));
}

#[test]
fn a_field_the_request_lacks_names_nothing_to_check() {
    // ali-ons' producer unregisters with a producer group only.
    let unregister = signed(
        code::UNREGISTER_CLIENT,
        &[("clientID", "c"), ("producerGroup", "pg")],
        b"",
        "consumer-secret",
    );
    assert!(check(&acl(), &unregister).is_ok());
    let named = signed(
        code::UNREGISTER_CLIENT,
        &[("clientID", "c"), ("consumerGroup", "pg")],
        b"",
        "consumer-secret",
    );
    assert!(refused(&named).contains("group \"pg\""));
}
