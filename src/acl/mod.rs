//! Access control (`broker --acl FILE`): who may publish, subscribe and administer, the same on
//! every front end. RocketMQ's plain ACL (4.4+, `plain_acl.yml`) is the model: accounts with an
//! access key and a secret key, a permission per topic and per consumer group, defaults for the
//! rest, and an admin flag for the requests that change the broker.
//!
//! How each front end knows the account:
//! - remoting: every request carries `AccessKey` and `Signature` (`shardmq_protocol::auth`);
//!   checked per request, as the Java broker does.
//! - native: the `Hello` carries the access key and a signature; the connection then acts as
//!   that account.
//! - HTTP: Basic authentication with the access key and the secret key.
//!
//! Decisions (Java's `PlainPermissionManager.checkPerm`, kept):
//! - a topic or group listed for the account has the listed permission; any other gets the
//!   account's default for its kind (`defaultTopicPerm`, `defaultGroupPerm`, DENY when unset);
//! - a consumer group stands for its retry topic `%RETRY%<group>`: a topic of that name is
//!   checked as the group;
//! - `admin = true` may send the requests that change topics and groups; an admin account
//!   that lists no topic and no group may also use every topic and group;
//! - with ACL on, a request without credentials, with an unknown access key or with a wrong
//!   signature is refused, whatever it asks. Nothing a refused request asked for is done.
//!
//! Invariants: the table is read-only once loaded (shared by every shard as `Arc<Acl>`); a
//! secret key is never shown (its `Debug` is redacted, no error names it).

mod file;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use shardmq_protocol::text::Shown;
use thiserror::Error;

pub use file::{load, parse as load_str, AclFileError};

/// The prefix that makes a topic name a consumer group's retry topic.
pub const RETRY_PREFIX: &str = "%RETRY%";

/// What an account may do with one topic or group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Perm {
    pub publish: bool,
    pub subscribe: bool,
}

impl Perm {
    pub const DENY: Perm = Perm {
        publish: false,
        subscribe: false,
    };
    pub const PUB: Perm = Perm {
        publish: true,
        subscribe: false,
    };
    pub const SUB: Perm = Perm {
        publish: false,
        subscribe: true,
    };
    pub const PUB_SUB: Perm = Perm {
        publish: true,
        subscribe: true,
    };

    /// RocketMQ's spellings: `DENY`, `PUB`, `SUB`, `PUB|SUB`, `SUB|PUB`.
    pub fn parse(text: &str) -> Option<Perm> {
        match text.trim() {
            "DENY" => Some(Perm::DENY),
            "PUB" => Some(Perm::PUB),
            "SUB" => Some(Perm::SUB),
            "PUB|SUB" | "SUB|PUB" => Some(Perm::PUB_SUB),
            _ => None,
        }
    }

    fn allows(self, need: Need) -> bool {
        match need {
            Need::Publish => self.publish,
            Need::Subscribe => self.subscribe,
        }
    }
}

/// What a request needs of a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Publish,
    Subscribe,
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Need::Publish => "PUB",
            Need::Subscribe => "SUB",
        })
    }
}

/// A topic or a consumer group, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    Topic(&'a str),
    Group(&'a str),
}

impl<'a> Resource<'a> {
    /// A topic, or the group whose retry topic it is.
    pub fn topic(name: &'a str) -> Resource<'a> {
        match name.strip_prefix(RETRY_PREFIX) {
            Some(group) => Resource::Group(group),
            None => Resource::Topic(name),
        }
    }
}

impl fmt::Display for Resource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Topic(name) => write!(f, "topic {}", Shown(name)),
            Resource::Group(name) => write!(f, "group {}", Shown(name)),
        }
    }
}

/// A secret key: compared and used to sign, never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(key: String) -> Secret {
        Secret(key)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// One user.
#[derive(Debug, Clone)]
pub struct Account {
    pub access_key: String,
    pub secret_key: Secret,
    pub admin: bool,
    pub default_topic_perm: Perm,
    pub default_group_perm: Perm,
    pub topic_perms: HashMap<String, Perm>,
    pub group_perms: HashMap<String, Perm>,
}

/// Why a request was refused. No variant carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Denied {
    #[error(
        "this broker requires ACL credentials (an access key and a signature); none were sent"
    )]
    NoCredentials,
    #[error("no ACL account has the access key {0}")]
    UnknownAccessKey(String),
    #[error("the signature does not match for access key {0}")]
    BadSignature(String),
    #[error("the secret key does not match for access key {0}")]
    WrongSecret(String),
    #[error("the Hello's clock is {skew_ms} ms away from the broker's (at most {max_ms} ms)")]
    ClockSkew { skew_ms: u64, max_ms: u64 },
    #[error("access key {access_key} needs admin permission for {what}")]
    NeedsAdmin {
        access_key: String,
        what: &'static str,
    },
    #[error("access key {access_key} has no {need} permission on {resource}")]
    NoPermission {
        access_key: String,
        need: Need,
        resource: String,
    },
}

impl Account {
    /// May this account use `resource` as `need` says?
    pub fn may(&self, resource: Resource<'_>, need: Need) -> Result<(), Denied> {
        let (listed, default) = match resource {
            Resource::Topic(name) => (self.topic_perms.get(name), self.default_topic_perm),
            Resource::Group(name) => (self.group_perms.get(name), self.default_group_perm),
        };
        let allowed = match listed {
            Some(perm) => perm.allows(need),
            None if self.admin && self.lists_nothing() => true,
            None => default.allows(need),
        };
        if allowed {
            Ok(())
        } else {
            Err(Denied::NoPermission {
                access_key: Shown(&self.access_key).to_string(),
                need,
                resource: resource.to_string(),
            })
        }
    }

    /// May this account send a request that changes the broker (`what` names it)?
    pub fn may_administer(&self, what: &'static str) -> Result<(), Denied> {
        if self.admin {
            Ok(())
        } else {
            Err(Denied::NeedsAdmin {
                access_key: Shown(&self.access_key).to_string(),
                what,
            })
        }
    }

    fn lists_nothing(&self) -> bool {
        self.topic_perms.is_empty() && self.group_perms.is_empty()
    }
}

/// Every account, by access key.
#[derive(Debug, Default)]
pub struct Acl {
    accounts: HashMap<String, Arc<Account>>,
}

impl Acl {
    pub fn new(accounts: impl IntoIterator<Item = Account>) -> Acl {
        Acl {
            accounts: accounts
                .into_iter()
                .map(|a| (a.access_key.clone(), Arc::new(a)))
                .collect(),
        }
    }

    /// The account with this access key.
    pub fn account(&self, access_key: &str) -> Result<&Arc<Account>, Denied> {
        self.accounts
            .get(access_key)
            .ok_or_else(|| Denied::UnknownAccessKey(Shown(access_key).to_string()))
    }

    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }
}

#[cfg(test)]
mod tests;
