//! Subscription groups: RocketMQ's per-group settings (`SubscriptionGroupConfig`), set by an
//! operator (UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, `mqadmin updateSubGroup`) and process-wide,
//! persisted in `<data-dir>/subscription-groups.json` with the topic registry's discipline:
//! changes run on a blocking thread one at a time and replace the file atomically
//! (`json_file`); the current table is an immutable snapshot swapped whole.
//!
//! A group nobody configured behaves as Java's defaults (RocketMQ's
//! `autoCreateSubscriptionGroup`, on by default): configuring is optional. What shardmq
//! honours: `consumeEnable` (false: the group's pulls and joins are refused), and
//! `consumeBroadcastEnable` (false: broadcasting members are refused), checked by
//! [`Core::check_may_consume`]; `notifyConsumerIdsChangedEnable` (false: no group-change pushes
//! to the group's RocketMQ clients). `retryMaxTimes`, `retryQueueNums` and
//! `consumeTimeoutMinute` are kept for the message kinds that use them (send back, retries);
//! the rest is stored and answered back as it came.
//!
//! The check sits on the pull path, so each shard reads a [`GroupConfigView`]: one atomic load
//! of the registry's version, and its own copy of the table, refreshed only when that moved (as
//! the topic registry's views do); no lock shared between shards on the request path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use shardmq_protocol::limits::validate_group_name;
use shardmq_protocol::remoting::admin_bodies::SubscriptionGroupConfig;

use super::error::{CoreError, CoreResult};
use super::Core;
use crate::sync::lock;

/// The most configured groups (a bound on the file and on every answer listing them).
pub const GROUP_CONFIGS_MAX: usize = 100_000;
const FILE: &str = "subscription-groups.json";

#[derive(Debug, thiserror::Error)]
pub enum GroupConfigError {
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a valid subscription group file: {message}", .path.display())]
    Corrupt { path: PathBuf, message: String },
}

#[derive(Serialize, Deserialize)]
struct Stored {
    groups: Vec<SubscriptionGroupConfig>,
}

type Table = BTreeMap<String, SubscriptionGroupConfig>;

pub struct GroupConfigs {
    path: PathBuf,
    /// Bumped on every change (the data version RocketMQ's wrapper carries).
    version: AtomicU64,
    /// How many groups are configured: the pull path's lock-free "nothing to check".
    len: AtomicUsize,
    current: Mutex<Arc<Table>>,
    changes: Mutex<()>,
}

impl GroupConfigs {
    /// Loads the configs of `data_dir` (none when the file is absent). Blocking: at boot.
    pub fn load(data_dir: &Path) -> Result<GroupConfigs, GroupConfigError> {
        let path = data_dir.join(FILE);
        let table: Table = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Stored>(&bytes)
                .map_err(|e| GroupConfigError::Corrupt {
                    path: path.clone(),
                    message: e.to_string(),
                })?
                .groups
                .into_iter()
                .map(|c| (c.group_name.clone(), c))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Table::new(),
            Err(source) => return Err(GroupConfigError::Io { path, source }),
        };
        Ok(GroupConfigs {
            path,
            version: AtomicU64::new(1),
            len: AtomicUsize::new(table.len()),
            current: Mutex::new(Arc::new(table)),
            changes: Mutex::new(()),
        })
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The group's config, if an operator set one.
    pub fn get(&self, group: &str) -> Option<SubscriptionGroupConfig> {
        if self.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        lock(&self.current).get(group).cloned()
    }

    fn snapshot(&self) -> (u64, Arc<Table>) {
        let table = lock(&self.current).clone();
        // Read after the table: a change swaps it, then bumps the version.
        (self.version.load(Ordering::Acquire), table)
    }

    /// Every configured group, by name.
    pub fn list(&self) -> Vec<SubscriptionGroupConfig> {
        lock(&self.current).values().cloned().collect()
    }

    /// Creates or replaces a group's config and persists it before returning. Blocking.
    pub fn upsert(&self, config: SubscriptionGroupConfig) -> CoreResult<()> {
        validate_group_name(&config.group_name)
            .map_err(|r| CoreError::InvalidArgument(r.to_string()))?;
        self.change(|table| {
            if !table.contains_key(&config.group_name) && table.len() >= GROUP_CONFIGS_MAX {
                return Err(CoreError::InvalidArgument(format!(
                    "{GROUP_CONFIGS_MAX} subscription groups are configured already"
                )));
            }
            table.insert(config.group_name.clone(), config);
            Ok(())
        })
    }

    /// Forgets a group's config; true if it had one. Blocking.
    pub fn remove(&self, group: &str) -> CoreResult<bool> {
        self.change(|table| Ok(table.remove(group).is_some()))
    }

    fn change<T>(&self, edit: impl FnOnce(&mut Table) -> CoreResult<T>) -> CoreResult<T> {
        let _one_at_a_time = lock(&self.changes);
        let mut next = (**lock(&self.current)).clone();
        let result = edit(&mut next)?;
        let stored = Stored {
            groups: next.values().cloned().collect(),
        };
        crate::json_file::replace(&self.path, &stored).map_err(|source| {
            CoreError::Storage(shardmq_shards::StorageError::Config(format!(
                "{}: {source}",
                self.path.display()
            )))
        })?;
        let len = next.len();
        *lock(&self.current) = Arc::new(next);
        self.len.store(len, Ordering::Release);
        self.version.fetch_add(1, Ordering::Release);
        Ok(result)
    }
}

/// What the request path needs of a group's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupPermissions {
    pub consume: bool,
    pub broadcast: bool,
    pub notify: bool,
}

/// One shard's copy of the configs; it lives in that shard's `Core`.
pub struct GroupConfigView {
    configs: Arc<GroupConfigs>,
    local: std::cell::RefCell<(u64, Arc<Table>)>,
}

impl GroupConfigView {
    pub fn new(configs: Arc<GroupConfigs>) -> GroupConfigView {
        let local = std::cell::RefCell::new(configs.snapshot());
        GroupConfigView { configs, local }
    }

    /// The group's permissions, `None` when it is not configured.
    pub fn permissions(&self, group: &str) -> Option<GroupPermissions> {
        if self.configs.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        if self.local.borrow().0 != self.configs.version() {
            *self.local.borrow_mut() = self.configs.snapshot();
        }
        self.local.borrow().1.get(group).map(|c| GroupPermissions {
            consume: c.consume_enable,
            broadcast: c.consume_broadcast_enable,
            notify: c.notify_consumer_ids_changed_enable,
        })
    }
}

impl Core {
    /// Refuses consumption by a group its config disables: any consumption when
    /// `consumeEnable` is false, broadcasting when `consumeBroadcastEnable` is false.
    pub fn check_may_consume(&self, group: &str, broadcasting: bool) -> CoreResult<()> {
        let Some(config) = self.group_view.permissions(group) else {
            return Ok(());
        };
        if !config.consume {
            return Err(CoreError::GroupNoPermission {
                group: group.to_string(),
                what: "consume (consumeEnable is false)",
            });
        }
        if broadcasting && !config.broadcast {
            return Err(CoreError::GroupNoPermission {
                group: group.to_string(),
                what: "consume by broadcasting (consumeBroadcastEnable is false)",
            });
        }
        Ok(())
    }

    /// Sets a group's config (on a blocking thread).
    pub async fn configure_group(&self, config: SubscriptionGroupConfig) -> CoreResult<()> {
        let configs = self.group_configs.clone();
        let name = config.group_name.clone();
        glommio::executor()
            .spawn_blocking(move || configs.upsert(config))
            .await?;
        tracing::info!(shard = self.shard_id, group = %name, "subscription group configured");
        Ok(())
    }

    /// Forgets a group's config (on a blocking thread); true if it had one.
    pub async fn unconfigure_group(&self, group: &str) -> CoreResult<bool> {
        let configs = self.group_configs.clone();
        let name = group.to_string();
        glommio::executor()
            .spawn_blocking(move || configs.remove(&name))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_persist_replace_and_disappear() {
        let dir = tempfile::tempdir().unwrap();
        let configs = GroupConfigs::load(dir.path()).unwrap();
        assert!(configs.get("g").is_none());
        let mut config = SubscriptionGroupConfig::defaults("g");
        config.consume_enable = false;
        configs.upsert(config.clone()).unwrap();
        configs
            .upsert(SubscriptionGroupConfig::defaults("h"))
            .unwrap();
        let v = configs.version();
        config.retry_max_times = 3;
        configs.upsert(config.clone()).unwrap();
        assert!(configs.version() > v);
        let reloaded = GroupConfigs::load(dir.path()).unwrap();
        assert_eq!(reloaded.get("g"), Some(config));
        assert_eq!(reloaded.list().len(), 2);
        assert!(reloaded.remove("h").unwrap());
        assert!(!reloaded.remove("h").unwrap());
        assert_eq!(GroupConfigs::load(dir.path()).unwrap().list().len(), 1);
    }

    #[test]
    fn a_shard_view_follows_changes() {
        let dir = tempfile::tempdir().unwrap();
        let configs = Arc::new(GroupConfigs::load(dir.path()).unwrap());
        let view = GroupConfigView::new(configs.clone());
        assert_eq!(view.permissions("g"), None);
        let mut config = SubscriptionGroupConfig::defaults("g");
        config.consume_enable = false;
        configs.upsert(config.clone()).unwrap();
        assert_eq!(view.permissions("g").map(|p| p.consume), Some(false));
        config.consume_enable = true;
        config.notify_consumer_ids_changed_enable = false;
        configs.upsert(config).unwrap();
        let seen = view.permissions("g").unwrap();
        assert!(seen.consume && !seen.notify && seen.broadcast);
        configs.remove("g").unwrap();
        assert_eq!(view.permissions("g"), None);
    }

    #[test]
    fn a_bad_name_or_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let configs = GroupConfigs::load(dir.path()).unwrap();
        let err = configs
            .upsert(SubscriptionGroupConfig::defaults("bad name!"))
            .unwrap_err();
        assert!(
            err.to_string().contains("group name may only hold"),
            "{err}"
        );
        std::fs::write(dir.path().join(FILE), b"{nope").unwrap();
        let err = GroupConfigs::load(dir.path()).err().unwrap();
        assert!(
            err.to_string()
                .contains("not a valid subscription group file"),
            "{err}"
        );
    }
}
