//! The topic registry: name → (topic id, queue count), shared by every shard and persisted in
//! `<data-dir>/topics.json`.
//!
//! Concurrency: one `Mutex` guards the map; it is held only for lookups and for the whole of a
//! create (including the file write), which runs on a blocking thread (`spawn_blocking`), never
//! on a shard executor. Shards keep their own read caches (`server::context`), since a topic,
//! once created, never changes in this version.
//!
//! Invariants: topic ids are assigned in increasing order and never reused; the file on disk is
//! replaced atomically (write temp, fsync, rename, fsync dir), so a crash leaves the old or the
//! new registry, never a torn one.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use shardmq_protocol::limits::{validate_topic_name, QUEUES_PER_TOPIC_MAX};
use shardmq_protocol::messages::TopicInfo;
use thiserror::Error;

use crate::limits::TOPICS_MAX;

#[derive(Debug, Error)]
pub enum TopicError {
    #[error("topic {} already exists", shardmq_protocol::text::Shown(.0))]
    Exists(String),
    #[error("invalid topic: {0}")]
    Invalid(String),
    #[error("the broker holds the maximum of {0} topics")]
    TooMany(usize),
    #[error("topic registry file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("topic registry file {path} is not valid: {message}")]
    Corrupt { path: PathBuf, message: String },
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct StoredTopic {
    name: String,
    topic_id: u32,
    queues: u32,
}

#[derive(Serialize, Deserialize, Default)]
struct StoredRegistry {
    next_topic_id: u32,
    topics: Vec<StoredTopic>,
}

pub struct TopicRegistry {
    path: PathBuf,
    state: Mutex<StoredRegistry>,
}

impl TopicRegistry {
    /// Loads the registry from `data_dir` (an absent file is an empty registry). Blocking: call it
    /// at boot, before the shards start.
    pub fn load(data_dir: &Path) -> Result<Self, TopicError> {
        let path = data_dir.join("topics.json");
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| TopicError::Corrupt {
                path: path.clone(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StoredRegistry {
                next_topic_id: 1,
                topics: vec![],
            },
            Err(source) => return Err(TopicError::Io { path, source }),
        };
        Ok(TopicRegistry {
            path,
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StoredRegistry> {
        // A panic while holding the lock cannot leave the map half-updated (the push is last).
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn get(&self, name: &str) -> Option<TopicInfo> {
        self.lock()
            .topics
            .iter()
            .find(|t| t.name == name)
            .map(to_info)
    }

    pub fn list(&self) -> Vec<TopicInfo> {
        let mut topics: Vec<_> = self.lock().topics.iter().map(to_info).collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        topics
    }

    /// Creates a topic and persists the registry before returning. Blocking.
    pub fn create(&self, name: &str, queues: u32) -> Result<TopicInfo, TopicError> {
        validate_topic_name(name).map_err(|r| TopicError::Invalid(r.to_string()))?;
        if queues == 0 || queues > QUEUES_PER_TOPIC_MAX {
            return Err(TopicError::Invalid(format!(
                "queue count {queues} is not in 1..={QUEUES_PER_TOPIC_MAX}"
            )));
        }
        let mut state = self.lock();
        if state.topics.iter().any(|t| t.name == name) {
            return Err(TopicError::Exists(name.to_string()));
        }
        if state.topics.len() >= TOPICS_MAX {
            return Err(TopicError::TooMany(TOPICS_MAX));
        }
        let topic = StoredTopic {
            name: name.to_string(),
            topic_id: state.next_topic_id,
            queues,
        };
        let mut next = StoredRegistry {
            next_topic_id: state.next_topic_id + 1,
            topics: state.topics.clone(),
        };
        next.topics.push(topic.clone());
        self.persist(&next)?;
        *state = next;
        Ok(to_info(&topic))
    }

    fn persist(&self, registry: &StoredRegistry) -> Result<(), TopicError> {
        use std::io::Write;
        let io = |source| TopicError::Io {
            path: self.path.clone(),
            source,
        };
        let tmp = self.path.with_extension("json.tmp");
        let bytes =
            serde_json::to_vec_pretty(registry).map_err(|e| io(std::io::Error::other(e)))?;
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(&bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        Ok(())
    }
}

fn to_info(t: &StoredTopic) -> TopicInfo {
    TopicInfo {
        name: t.name.clone(),
        topic_id: t.topic_id,
        queues: t.queues,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_persist_reload() {
        let dir = tempfile::tempdir().unwrap();
        let registry = TopicRegistry::load(dir.path()).unwrap();
        let a = registry.create("orders", 8).unwrap();
        let b = registry.create("trades", 2).unwrap();
        assert!(b.topic_id > a.topic_id);
        assert!(matches!(
            registry.create("orders", 8),
            Err(TopicError::Exists(_))
        ));
        assert!(matches!(
            registry.create("bad name", 8),
            Err(TopicError::Invalid(_))
        ));
        assert!(matches!(
            registry.create("zero", 0),
            Err(TopicError::Invalid(_))
        ));
        let reloaded = TopicRegistry::load(dir.path()).unwrap();
        assert_eq!(reloaded.list(), registry.list());
        assert_eq!(reloaded.get("orders"), Some(a));
        let c = reloaded.create("c", 1).unwrap();
        assert!(c.topic_id > b.topic_id, "ids are never reused");
    }

    #[test]
    fn corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("topics.json"), b"{not json").unwrap();
        assert!(matches!(
            TopicRegistry::load(dir.path()),
            Err(TopicError::Corrupt { .. })
        ));
    }
}
