//! The ACL file: RocketMQ's `plain_acl.yml` keys, written as TOML (the broker's config is TOML).
//!
//! ```toml
//! [[accounts]]
//! accessKey = "RocketMQ"
//! secretKey = "12345678"
//! admin = false
//! defaultTopicPerm = "DENY"
//! defaultGroupPerm = "SUB"
//! topicPerms = ["topicA=DENY", "topicB=PUB|SUB", "topicC=SUB"]
//! groupPerms = ["groupA=DENY", "groupB=PUB|SUB", "groupC=SUB"]
//! ```
//!
//! Refused at start, each with the file, the account and the entry: a file that is not TOML, an
//! unknown key (RocketMQ's address white lists, `whiteRemoteAddress` and
//! `globalWhiteRemoteAddresses`, are not supported and say so), no account, an access key or
//! secret key shorter than 6 characters (as Java), two accounts with one access key, a
//! permission that is not DENY, PUB, SUB or PUB|SUB (Java silently reads those as DENY), an
//! entry without `=` and a resource listed twice. The message never repeats a secret key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use super::{Account, Acl, Perm, Secret};

/// Shortest access key and secret key Java's plain ACL accepts.
pub const KEY_CHARS_MIN: usize = 6;

#[derive(Debug, Error)]
pub enum AclFileError {
    #[error("cannot read the ACL file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("ACL file {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAcl {
    #[serde(default)]
    accounts: Vec<FileAccount>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FileAccount {
    access_key: String,
    secret_key: String,
    #[serde(default)]
    admin: bool,
    default_topic_perm: Option<String>,
    default_group_perm: Option<String>,
    #[serde(default)]
    topic_perms: Vec<String>,
    #[serde(default)]
    group_perms: Vec<String>,
}

/// Reads and checks the ACL file at `path`.
pub fn load(path: &Path) -> Result<Acl, AclFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| AclFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|reason| AclFileError::Invalid {
        path: path.to_owned(),
        reason,
    })
}

/// The accounts of an ACL file's text, or why it is refused.
pub fn parse(text: &str) -> Result<Acl, String> {
    let file: FileAcl = toml::from_str(text).map_err(|e| {
        let message = e.message();
        if message.contains("WhiteRemoteAddress") || message.contains("whiteRemoteAddress") {
            format!("{message}: address white lists are not supported; every request is signed")
        } else {
            message.to_string()
        }
    })?;
    if file.accounts.is_empty() {
        return Err("no [[accounts]]: with ACL on, nobody could connect".into());
    }
    let mut accounts: Vec<Account> = Vec::with_capacity(file.accounts.len());
    for (i, entry) in file.accounts.into_iter().enumerate() {
        let account = account(entry).map_err(|reason| format!("account {}: {reason}", i + 1))?;
        if accounts.iter().any(|a| a.access_key == account.access_key) {
            return Err(format!(
                "account {}: access key {:?} is used by an earlier account",
                i + 1,
                account.access_key
            ));
        }
        accounts.push(account);
    }
    Ok(Acl::new(accounts))
}

fn account(entry: FileAccount) -> Result<Account, String> {
    if entry.access_key.chars().count() < KEY_CHARS_MIN {
        return Err(format!(
            "accessKey {:?} is shorter than {KEY_CHARS_MIN} characters",
            entry.access_key
        ));
    }
    let who = format!("accessKey {:?}", entry.access_key);
    if entry.secret_key.chars().count() < KEY_CHARS_MIN {
        return Err(format!(
            "{who}: secretKey is shorter than {KEY_CHARS_MIN} characters"
        ));
    }
    let default = |key: &str, value: Option<String>| match value {
        None => Ok(Perm::DENY),
        Some(text) => perm(&text).map_err(|e| format!("{who}: {key}: {e}")),
    };
    Ok(Account {
        default_topic_perm: default("defaultTopicPerm", entry.default_topic_perm)?,
        default_group_perm: default("defaultGroupPerm", entry.default_group_perm)?,
        topic_perms: resources(&entry.topic_perms)
            .map_err(|e| format!("{who}: topicPerms: {e}"))?,
        group_perms: resources(&entry.group_perms)
            .map_err(|e| format!("{who}: groupPerms: {e}"))?,
        access_key: entry.access_key,
        secret_key: Secret::new(entry.secret_key),
        admin: entry.admin,
    })
}

fn perm(text: &str) -> Result<Perm, String> {
    Perm::parse(text).ok_or_else(|| format!("{text:?} is not DENY, PUB, SUB or PUB|SUB"))
}

/// `["name=PERM", …]` as a map.
fn resources(entries: &[String]) -> Result<HashMap<String, Perm>, String> {
    let mut map = HashMap::with_capacity(entries.len());
    for entry in entries {
        let Some((name, text)) = entry.split_once('=') else {
            return Err(format!("{entry:?} is not NAME=PERM"));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("{entry:?} names nothing before `=`"));
        }
        if map.insert(name.to_string(), perm(text)?).is_some() {
            return Err(format!("{name:?} is listed twice"));
        }
    }
    Ok(map)
}
