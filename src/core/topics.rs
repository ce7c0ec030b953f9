//! Topics: the process-wide registry (name → id, queues, permission), persisted in
//! `<data-dir>/topics.json`, and each shard's lock-free view of it.
//!
//! Concurrency: a change (create, update, delete) runs on a blocking thread, never on a shard
//! executor, and holds the `changes` lock across its file write, so changes apply one at a time
//! in the order they persisted. The current table is an immutable snapshot behind a short lock,
//! replaced whole on every change, with a version counter beside it. A shard's [`TopicView`]
//! compares that counter (one atomic load) and rebuilds its own `Rc` copy only when it moved,
//! so a lookup on the request path takes no lock and shares no cache line that others write.
//!
//! Invariants: topic ids are assigned in increasing order and never reused (a topic deleted and
//! created again gets a new id, so nothing stored under the old one is ever served under the new
//! one); the file is replaced atomically (write temp, fsync, rename, fsync dir), so a crash
//! leaves the old or the new registry, never a torn one. Names follow RocketMQ's rule; system
//! topics are refused to clients.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use shardmq_protocol::limits::{is_system_topic, validate_topic_name, QUEUES_PER_TOPIC_MAX};
use shardmq_protocol::text::Shown;
use thiserror::Error;

use crate::limits::TOPICS_MAX;
use crate::sync::lock;

/// RocketMQ's permission bits (`PermName`).
pub const PERM_READ: u8 = 4;
pub const PERM_WRITE: u8 = 2;
pub const PERM_INHERIT: u8 = 1;
/// A normal topic: readable and writable.
pub const PERM_READ_WRITE: u8 = PERM_READ | PERM_WRITE;

#[derive(Debug, Error)]
pub enum TopicError {
    #[error("topic {} already exists", Shown(.0))]
    Exists(String),
    #[error("topic {} does not exist", Shown(.0))]
    NotFound(String),
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

/// One topic as the broker knows it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Topic {
    pub name: String,
    /// Broker-assigned, never reused; stamped into every stored batch of the topic.
    pub topic_id: u32,
    pub queues: u32,
    /// RocketMQ permission bits; 6 (read and write) unless changed.
    #[serde(default = "default_perm")]
    pub perm: u8,
}

fn default_perm() -> u8 {
    PERM_READ_WRITE
}

impl Topic {
    pub fn readable(&self) -> bool {
        self.perm & PERM_READ != 0
    }

    pub fn writable(&self) -> bool {
        self.perm & PERM_WRITE != 0
    }
}

/// What a topic update changes; `None` keeps the current value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicChange {
    /// More queues (a topic never loses queues: their data and offsets would be stranded).
    pub queues: Option<u32>,
    pub perm: Option<u8>,
}

#[derive(Serialize, Deserialize, Default, Clone)]
struct TopicTable {
    next_topic_id: u32,
    topics: BTreeMap<String, Topic>,
}

/// The file's shape (a list, in name order, for people reading it).
#[derive(Serialize, Deserialize)]
struct StoredRegistry {
    next_topic_id: u32,
    topics: Vec<Topic>,
}

pub struct TopicRegistry {
    path: PathBuf,
    version: AtomicU64,
    current: Mutex<Arc<TopicTable>>,
    /// Held by a change from its checks to its file write and swap.
    changes: Mutex<()>,
}

fn validate_queues(queues: u32) -> Result<(), TopicError> {
    if queues == 0 || queues > QUEUES_PER_TOPIC_MAX {
        return Err(TopicError::Invalid(format!(
            "queue count {queues} is not in 1..={QUEUES_PER_TOPIC_MAX}"
        )));
    }
    Ok(())
}

fn validate_perm(perm: u8) -> Result<(), TopicError> {
    if perm & !(PERM_READ | PERM_WRITE | PERM_INHERIT) != 0 {
        return Err(TopicError::Invalid(format!(
            "permission {perm} has bits other than read (4), write (2) and inherit (1)"
        )));
    }
    Ok(())
}

impl TopicRegistry {
    /// Loads the registry from `data_dir` (an absent file is an empty registry). Blocking: call it
    /// at boot, before the shards start.
    pub fn load(data_dir: &Path) -> Result<Self, TopicError> {
        let path = data_dir.join("topics.json");
        let table = match std::fs::read(&path) {
            Ok(bytes) => {
                let stored: StoredRegistry =
                    serde_json::from_slice(&bytes).map_err(|e| TopicError::Corrupt {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                TopicTable {
                    next_topic_id: stored.next_topic_id,
                    topics: stored
                        .topics
                        .into_iter()
                        .map(|t| (t.name.clone(), t))
                        .collect(),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => TopicTable {
                next_topic_id: 1,
                topics: BTreeMap::new(),
            },
            Err(source) => return Err(TopicError::Io { path, source }),
        };
        Ok(TopicRegistry {
            path,
            version: AtomicU64::new(1),
            current: Mutex::new(Arc::new(table)),
            changes: Mutex::new(()),
        })
    }

    fn snapshot(&self) -> (u64, Arc<TopicTable>) {
        let table = lock(&self.current).clone();
        // Read after the table: a change swaps the table, then bumps the version, so a version
        // read here never names a table newer than the one taken.
        (self.version.load(Ordering::Acquire), table)
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    pub fn get(&self, name: &str) -> Option<Topic> {
        self.snapshot().1.topics.get(name).cloned()
    }

    /// Every topic, in name order.
    pub fn list(&self) -> Vec<Topic> {
        self.snapshot().1.topics.values().cloned().collect()
    }

    /// Creates a topic and persists the registry before returning. Blocking. `system` lets the
    /// broker itself create the topics it owns (retry and dead-letter topics).
    pub fn create(
        &self,
        name: &str,
        queues: u32,
        perm: u8,
        system: bool,
    ) -> Result<Topic, TopicError> {
        validate_topic_name(name).map_err(|r| TopicError::Invalid(r.to_string()))?;
        if is_system_topic(name) && !system {
            return Err(TopicError::Invalid(format!(
                "{} is a system topic; the broker creates it",
                Shown(name)
            )));
        }
        validate_queues(queues)?;
        validate_perm(perm)?;
        self.change(|table| {
            if table.topics.contains_key(name) {
                return Err(TopicError::Exists(name.to_string()));
            }
            if table.topics.len() >= TOPICS_MAX {
                return Err(TopicError::TooMany(TOPICS_MAX));
            }
            let topic = Topic {
                name: name.to_string(),
                topic_id: table.next_topic_id,
                queues,
                perm,
            };
            table.next_topic_id += 1;
            table.topics.insert(name.to_string(), topic.clone());
            Ok(topic)
        })
    }

    /// Changes a topic's queue count (up only) or permission. Blocking.
    pub fn update(&self, name: &str, change: TopicChange) -> Result<Topic, TopicError> {
        if let Some(queues) = change.queues {
            validate_queues(queues)?;
        }
        if let Some(perm) = change.perm {
            validate_perm(perm)?;
        }
        self.change(|table| {
            let topic = table
                .topics
                .get_mut(name)
                .ok_or_else(|| TopicError::NotFound(name.to_string()))?;
            if let Some(queues) = change.queues {
                if queues < topic.queues {
                    return Err(TopicError::Invalid(format!(
                        "topic {} has {} queues; a topic never loses queues (their data and \
                         offsets would be stranded)",
                        Shown(name),
                        topic.queues
                    )));
                }
                topic.queues = queues;
            }
            if let Some(perm) = change.perm {
                topic.perm = perm;
            }
            Ok(topic.clone())
        })
    }

    /// Removes a topic from the registry. Blocking. Its stored data is freed by the shards
    /// (`Core::drop_topic_data`); its id is never given out again.
    pub fn delete(&self, name: &str, system: bool) -> Result<Topic, TopicError> {
        if is_system_topic(name) && !system {
            return Err(TopicError::Invalid(format!(
                "{} is a system topic; the broker deletes it",
                Shown(name)
            )));
        }
        self.change(|table| {
            table
                .topics
                .remove(name)
                .ok_or_else(|| TopicError::NotFound(name.to_string()))
        })
    }

    /// Applies `edit` to a copy of the table, persists the copy, then makes it current.
    fn change<T>(
        &self,
        edit: impl FnOnce(&mut TopicTable) -> Result<T, TopicError>,
    ) -> Result<T, TopicError> {
        let _one_at_a_time = lock(&self.changes);
        let mut next = (*lock(&self.current).clone()).clone();
        let result = edit(&mut next)?;
        self.persist(&next)?;
        *lock(&self.current) = Arc::new(next);
        self.version.fetch_add(1, Ordering::Release);
        Ok(result)
    }

    fn persist(&self, table: &TopicTable) -> Result<(), TopicError> {
        let stored = StoredRegistry {
            next_topic_id: table.next_topic_id,
            topics: table.topics.values().cloned().collect(),
        };
        crate::json_file::replace(&self.path, &stored).map_err(|source| TopicError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// One shard's copy of the registry's current table.
struct LocalTopics {
    version: u64,
    by_name: HashMap<String, Rc<Topic>>,
}

/// A shard's lock-free view of the registry (`Rc`; lives on one core).
pub struct TopicView {
    registry: Arc<TopicRegistry>,
    local: std::cell::RefCell<Rc<LocalTopics>>,
}

impl TopicView {
    pub fn new(registry: Arc<TopicRegistry>) -> Self {
        let view = TopicView {
            registry,
            local: std::cell::RefCell::new(Rc::new(LocalTopics {
                version: 0,
                by_name: HashMap::new(),
            })),
        };
        view.refresh();
        view
    }

    pub fn registry(&self) -> &Arc<TopicRegistry> {
        &self.registry
    }

    /// The current table: this shard's copy, rebuilt only when the registry changed.
    fn current(&self) -> Rc<LocalTopics> {
        if self.local.borrow().version != self.registry.version() {
            self.refresh();
        }
        self.local.borrow().clone()
    }

    fn refresh(&self) {
        let (version, table) = self.registry.snapshot();
        let by_name = table
            .topics
            .iter()
            .map(|(name, topic)| (name.clone(), Rc::new(topic.clone())))
            .collect();
        *self.local.borrow_mut() = Rc::new(LocalTopics { version, by_name });
    }

    pub fn get(&self, name: &str) -> Option<Rc<Topic>> {
        self.current().by_name.get(name).cloned()
    }

    /// Every topic, in name order.
    pub fn list(&self) -> Vec<Rc<Topic>> {
        let mut topics: Vec<_> = self.current().by_name.values().cloned().collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        topics
    }

    /// True when a topic with this id exists now.
    pub fn has_id(&self, topic_id: u32) -> bool {
        self.current()
            .by_name
            .values()
            .any(|t| t.topic_id == topic_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_update_delete_persist_reload() {
        let dir = tempfile::tempdir().unwrap();
        let registry = TopicRegistry::load(dir.path()).unwrap();
        let a = registry
            .create("orders", 8, PERM_READ_WRITE, false)
            .unwrap();
        let b = registry
            .create("trades", 2, PERM_READ_WRITE, false)
            .unwrap();
        assert!(b.topic_id > a.topic_id);
        assert!(matches!(
            registry.create("orders", 8, 6, false),
            Err(TopicError::Exists(_))
        ));
        for (name, queues) in [("bad name", 8), ("zero", 0), ("TBW102", 1), ("%RETRY%g", 1)] {
            assert!(
                matches!(
                    registry.create(name, queues, 6, false),
                    Err(TopicError::Invalid(_))
                ),
                "{name}"
            );
        }
        let more = registry
            .update(
                "orders",
                TopicChange {
                    queues: Some(12),
                    perm: Some(PERM_READ),
                },
            )
            .unwrap();
        assert_eq!((more.queues, more.perm), (12, PERM_READ));
        assert!(registry
            .update(
                "orders",
                TopicChange {
                    queues: Some(4),
                    perm: None
                }
            )
            .is_err());
        let reloaded = TopicRegistry::load(dir.path()).unwrap();
        assert_eq!(reloaded.list(), registry.list());
        assert_eq!(reloaded.get("orders"), Some(more));
        reloaded.delete("trades", false).unwrap();
        let again = reloaded.create("trades", 2, 6, false).unwrap();
        assert!(again.topic_id > b.topic_id, "ids are never reused");
    }

    #[test]
    fn a_view_follows_the_registry_without_locking_when_nothing_changed() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Arc::new(TopicRegistry::load(dir.path()).unwrap());
        let view = TopicView::new(registry.clone());
        assert!(view.get("t").is_none());
        let t = registry.create("t", 1, 6, false).unwrap();
        assert_eq!(view.get("t").map(|t| t.topic_id), Some(t.topic_id));
        assert!(view.has_id(t.topic_id));
        registry.delete("t", false).unwrap();
        assert!(view.get("t").is_none());
        assert!(!view.has_id(t.topic_id));
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
