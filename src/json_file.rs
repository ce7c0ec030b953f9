//! A JSON file replaced atomically: written to `<name>.tmp`, fsynced, renamed over the old one,
//! and the directory fsynced, so a crash leaves the old file or the new one, never a torn one.
//! Blocking: call it from a blocking thread or at boot, never on a shard executor.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

pub fn replace(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
