//! What a group keeps across restarts, and its file: `<shard dir>/groups`, a `snapshot_file`
//! (magic "SMQG") whose body is the JSON list of [`GroupRecord`]s of the groups this shard
//! coordinates. Written by the core's housekeeping when a record changed, and at close.

use std::path::Path;

use serde::{Deserialize, Serialize};
use shardmq_shards::snapshot_file::{self, SnapshotRead};
use shardmq_shards::StorageError;

use super::{Mode, Strategy, Subscription};

const MAGIC: u32 = u32::from_le_bytes(*b"SMQG");
const VERSION: u32 = 1;
const FILE: &str = "groups";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub name: String,
    pub mode: Mode,
    pub strategy: Strategy,
    /// Every topic a member subscribed to, with the latest filter seen for it.
    pub subscriptions: Vec<Subscription>,
}

impl GroupRecord {
    pub fn new(name: &str, mode: Mode, strategy: Strategy) -> GroupRecord {
        GroupRecord {
            name: name.to_string(),
            mode,
            strategy,
            subscriptions: Vec::new(),
        }
    }
}

/// The records of `dir`; an unreadable file is reported and treated as none (groups are
/// re-created by their members' next heartbeat; offsets live elsewhere and are kept).
pub async fn load(dir: &Path) -> Vec<GroupRecord> {
    let why = match snapshot_file::read(dir, FILE, MAGIC, VERSION).await {
        SnapshotRead::Missing => return Vec::new(),
        SnapshotRead::Valid(body) => match serde_json::from_slice(&body) {
            Ok(records) => return records,
            Err(e) => e.to_string(),
        },
        SnapshotRead::Invalid(why) => why,
    };
    tracing::error!(dir = %dir.display(), %why, "the groups file is unreadable; groups come back as their members heartbeat");
    Vec::new()
}

pub async fn write(dir: &Path, records: &[GroupRecord]) -> Result<(), StorageError> {
    let body = serde_json::to_vec(records).map_err(|e| StorageError::Config(e.to_string()))?;
    snapshot_file::write(dir, FILE, MAGIC, VERSION, &body).await
}
