//! The data directory's layout: how many shards it was created with and which routing function
//! placed its queues on them, recorded in `<data-dir>/layout.json`.
//!
//! Why it is recorded: a queue's log, index and offsets live on the shard that
//! `routing::shard_for_queue(topic, queue, shard_count)` picked when they were written. Serving
//! the same files with another shard count (the default follows the CPU count, so moving the
//! data to another machine changes it) would route requests to shards that hold other queues'
//! data or none: wrong or empty queues, silently.
//!
//! Rules, applied at every start before any shard opens its store:
//! - a recorded layout is authoritative: without `--shards` its count is used; a `--shards` that
//!   differs, or a routing function this build does not implement, refuses to start with a
//!   message that says what is recorded and what to do;
//! - without a record, a directory that already holds shard directories (written before the
//!   record existed) has its count inferred from them (they must be `0..n`), and then recorded;
//! - a fresh directory records the requested (or default) count.
//!
//! The file is replaced atomically (write a temporary file, fsync, rename, fsync the directory).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use shardmq_protocol::routing::ROUTING_NAME;
use thiserror::Error;

const LAYOUT_FILE: &str = "layout.json";
const LAYOUT_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Version of this file's format.
    pub format: u32,
    pub shard_count: u32,
    /// `shardmq_protocol::routing::ROUTING_NAME` of the function that placed the queues.
    pub routing: String,
}

#[derive(Debug, Error)]
pub enum LayoutError {
    #[error(
        "data directory {dir} holds {recorded} shards (routing {routing}) but --shards asks for \
         {requested}. Each queue's data lives on the shard its routing picked when it was \
         written, so another shard count would serve wrong or empty queues. Start with \
         --shards {recorded} (or leave --shards out: the recorded count is used), or move to a \
         new data directory as README \"Changing the shard count\" describes"
    )]
    ShardCountMismatch {
        dir: PathBuf,
        recorded: u32,
        requested: u32,
        routing: String,
    },
    #[error(
        "data directory {dir} was written with routing function {recorded:?}; this build \
         implements {ROUTING_NAME:?} and cannot find that data's queues"
    )]
    RoutingMismatch { dir: PathBuf, recorded: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Reads, checks and if needed records the layout of `data_dir`. `requested` is `--shards`;
/// `default_count` is what a fresh directory gets without it. Blocking: call it at boot.
pub fn settle(
    data_dir: &Path,
    requested: Option<u32>,
    default_count: u32,
) -> Result<Layout, LayoutError> {
    let path = data_dir.join(LAYOUT_FILE);
    let recorded = match read(&path)? {
        Some(layout) => Some(layout),
        None => infer_from_shard_dirs(data_dir)?,
    };
    let layout = match recorded {
        Some(layout) => {
            check(data_dir, &layout, requested)?;
            layout
        }
        None => Layout {
            format: LAYOUT_FORMAT,
            shard_count: requested.unwrap_or(default_count).max(1),
            routing: ROUTING_NAME.to_string(),
        },
    };
    if read(&path)?.as_ref() != Some(&layout) {
        write(&path, &layout)?;
    }
    Ok(layout)
}

fn check(data_dir: &Path, layout: &Layout, requested: Option<u32>) -> Result<(), LayoutError> {
    if layout.routing != ROUTING_NAME {
        return Err(LayoutError::RoutingMismatch {
            dir: data_dir.to_path_buf(),
            recorded: layout.routing.clone(),
        });
    }
    match requested {
        Some(requested) if requested != layout.shard_count => {
            Err(LayoutError::ShardCountMismatch {
                dir: data_dir.to_path_buf(),
                recorded: layout.shard_count,
                requested,
                routing: layout.routing.clone(),
            })
        }
        _ => Ok(()),
    }
}

fn read(path: &Path) -> Result<Option<Layout>, LayoutError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(LayoutError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let invalid = |message: String| LayoutError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let layout: Layout = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
    if layout.format != LAYOUT_FORMAT {
        return Err(invalid(format!(
            "format {} is not the supported {LAYOUT_FORMAT}",
            layout.format
        )));
    }
    if layout.shard_count == 0 {
        return Err(invalid("shard_count is 0".into()));
    }
    Ok(Some(layout))
}

/// The layout of a directory written before `layout.json` existed: `shards/0..n`.
fn infer_from_shard_dirs(data_dir: &Path) -> Result<Option<Layout>, LayoutError> {
    let shards_dir = data_dir.join("shards");
    let entries = match std::fs::read_dir(&shards_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(LayoutError::Io {
                path: shards_dir,
                source,
            })
        }
    };
    let mut ids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok()?.parse().ok())
        .collect();
    if ids.is_empty() {
        return Ok(None);
    }
    ids.sort_unstable();
    let count = ids.len() as u32;
    if ids.iter().copied().ne(0..count) {
        return Err(LayoutError::Invalid {
            path: shards_dir,
            message: format!(
                "shard directories {ids:?} are not 0..{count}; cannot tell the shard count"
            ),
        });
    }
    Ok(Some(Layout {
        format: LAYOUT_FORMAT,
        shard_count: count,
        routing: ROUTING_NAME.to_string(),
    }))
}

fn write(path: &Path, layout: &Layout) -> Result<(), LayoutError> {
    crate::json_file::replace(path, layout).map_err(|source| LayoutError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_directory_records_the_count_and_later_starts_keep_it() {
        let dir = tempfile::tempdir().unwrap();
        let layout = settle(dir.path(), Some(3), 8).unwrap();
        assert_eq!(layout.shard_count, 3);
        // Without --shards the recorded count wins over the default.
        assert_eq!(settle(dir.path(), None, 8).unwrap().shard_count, 3);
        assert_eq!(settle(dir.path(), Some(3), 8).unwrap().shard_count, 3);
        let err = settle(dir.path(), Some(4), 8).unwrap_err();
        assert!(
            matches!(err, LayoutError::ShardCountMismatch { .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("holds 3 shards") && text.contains("--shards 3"),
            "{text}"
        );
    }

    #[test]
    fn a_directory_from_before_the_record_is_inferred_from_its_shard_dirs() {
        let dir = tempfile::tempdir().unwrap();
        for k in 0..2 {
            std::fs::create_dir_all(dir.path().join("shards").join(k.to_string())).unwrap();
        }
        assert!(settle(dir.path(), Some(4), 8).is_err());
        assert_eq!(settle(dir.path(), None, 8).unwrap().shard_count, 2);
        assert!(
            dir.path().join(LAYOUT_FILE).exists(),
            "the inferred layout is recorded"
        );
    }

    #[test]
    fn gaps_in_shard_dirs_and_foreign_routing_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("shards").join("1")).unwrap();
        assert!(matches!(
            settle(dir.path(), None, 1),
            Err(LayoutError::Invalid { .. })
        ));
        let other = tempfile::tempdir().unwrap();
        std::fs::write(
            other.path().join(LAYOUT_FILE),
            br#"{"format":1,"shard_count":2,"routing":"murmur/v9"}"#,
        )
        .unwrap();
        assert!(matches!(
            settle(other.path(), None, 1),
            Err(LayoutError::RoutingMismatch { .. })
        ));
    }
}
