use super::file::parse;
use super::*;

const SAMPLE: &str = r#"
[[accounts]]
accessKey = "RocketMQ"
secretKey = "12345678"
admin = false
defaultTopicPerm = "DENY"
defaultGroupPerm = "SUB"
topicPerms = ["topicA=DENY", "topicB=PUB|SUB", "topicC=SUB"]
groupPerms = ["groupA=DENY", "groupB=PUB|SUB", "groupC=SUB"]

[[accounts]]
accessKey = "rocketmq2"
secretKey = "12345678"
admin = true
"#;

fn user(acl: &Acl, key: &str) -> Arc<Account> {
    acl.account(key).unwrap().clone()
}

#[test]
fn rocketmqs_sample_file_decides_as_java_does() {
    let acl = parse(SAMPLE).unwrap();
    assert_eq!(acl.len(), 2);
    let plain = user(&acl, "RocketMQ");
    assert!(plain.may(Resource::Topic("topicB"), Need::Publish).is_ok());
    assert!(plain
        .may(Resource::Topic("topicC"), Need::Subscribe)
        .is_ok());
    let denied = plain
        .may(Resource::Topic("topicC"), Need::Publish)
        .unwrap_err();
    assert_eq!(
        denied.to_string(),
        "access key \"RocketMQ\" has no PUB permission on topic \"topicC\""
    );
    assert!(plain
        .may(Resource::Topic("topicA"), Need::Subscribe)
        .is_err());
    // Unlisted topics take the default (DENY), unlisted groups theirs (SUB).
    assert!(plain
        .may(Resource::Topic("other"), Need::Subscribe)
        .is_err());
    assert!(plain.may(Resource::Group("other"), Need::Subscribe).is_ok());
    assert!(plain
        .may(Resource::Group("groupA"), Need::Subscribe)
        .is_err());
    assert!(plain.may_administer("creating a topic").is_err());
    // A retry topic is its group.
    assert_eq!(Resource::topic("%RETRY%groupA"), Resource::Group("groupA"));
    assert!(plain
        .may(Resource::topic("%RETRY%groupA"), Need::Subscribe)
        .is_err());

    let admin = user(&acl, "rocketmq2");
    assert!(admin.may_administer("creating a topic").is_ok());
    assert!(admin
        .may(Resource::Topic("anything"), Need::Publish)
        .is_ok());
    assert!(matches!(
        acl.account("nobody"),
        Err(Denied::UnknownAccessKey(_))
    ));
}

#[test]
fn an_admin_that_lists_resources_is_held_to_them() {
    let acl = parse(
        r#"[[accounts]]
accessKey = "admin1"
secretKey = "secret1"
admin = true
topicPerms = ["t=SUB"]"#,
    )
    .unwrap();
    let admin = user(&acl, "admin1");
    assert!(admin.may(Resource::Topic("t"), Need::Publish).is_err());
    assert!(admin.may(Resource::Topic("u"), Need::Publish).is_err());
    assert!(admin.may_administer("deleting a topic").is_ok());
}

#[test]
fn bad_files_are_refused_with_the_reason_and_never_the_secret() {
    let cases = [
        ("", "no [[accounts]]"),
        ("accounts = 3", "invalid type"),
        (
            "[[accounts]]\naccessKey = \"abc\"\nsecretKey = \"topsecret\"",
            "shorter than 6",
        ),
        (
            "[[accounts]]\naccessKey = \"abcdef\"\nsecretKey = \"short\"",
            "secretKey is shorter than 6",
        ),
        (
            "[[accounts]]\naccessKey = \"abcdef\"\nsecretKey = \"topsecret\"\ndefaultTopicPerm = \"ALL\"",
            "\"ALL\" is not DENY, PUB, SUB or PUB|SUB",
        ),
        (
            "[[accounts]]\naccessKey = \"abcdef\"\nsecretKey = \"topsecret\"\ntopicPerms = [\"t\"]",
            "\"t\" is not NAME=PERM",
        ),
        (
            "[[accounts]]\naccessKey = \"abcdef\"\nsecretKey = \"topsecret\"\ntopicPerms = [\"t=PUB\", \"t=SUB\"]",
            "\"t\" is listed twice",
        ),
        (
            "[[accounts]]\naccessKey = \"abcdef\"\nsecretKey = \"topsecret\"\n[[accounts]]\naccessKey = \"abcdef\"\nsecretKey = \"topsecret\"",
            "used by an earlier account",
        ),
        (
            "[[accounts]]\naccessKey = \"abcdef\"\nsecretKey = \"topsecret\"\nwhiteRemoteAddress = \"192.168.*.*\"",
            "white lists are not supported",
        ),
    ];
    for (text, wanted) in cases {
        let reason = parse(text).map(|_| ()).unwrap_err();
        assert!(reason.contains(wanted), "{text:?}: {reason}");
        assert!(!reason.contains("topsecret"), "{reason}");
    }
}

#[test]
fn a_secret_is_never_shown() {
    let acl = parse(SAMPLE).unwrap();
    let shown = format!("{acl:?}");
    assert!(shown.contains("RocketMQ"));
    assert!(!shown.contains("12345678"), "{shown}");
}
