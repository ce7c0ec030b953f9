//! Works around a glommio 0.9 misdetection that breaks every DMA read on some devices.
//!
//! glommio decides once per block device (process-wide) whether reads may use the io_uring poll
//! ring, by reading one block from the first `DmaFile` opened on that device. If that file is
//! empty, the read "succeeds" at end of file, glommio concludes the device supports iopoll, and
//! every later read on the device fails with EOPNOTSUPP (seen on ext4 over virtio-blk).
//!
//! [`prime`] opens a non-empty file in the data directory first, so the probe reads real data and
//! gets the device's true answer. Call it before any other `DmaFile` is opened on that device.

use std::path::Path;

use crate::error::{Result, StorageError};

const PROBE_FILE: &str = ".iopoll-probe";

pub async fn prime(dir: &Path) -> Result<()> {
    if crate::file_io::is_simulated(dir) {
        return Ok(()); // no device to probe
    }
    let path = dir.join(PROBE_FILE);
    let write_path = path.clone();
    glommio::executor()
        .spawn_blocking(move || -> Result<()> {
            if let Some(parent) = write_path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| StorageError::io(parent, e))?;
            }
            std::fs::write(&write_path, vec![0x5Au8; 8192])
                .map_err(|e| StorageError::io(&write_path, e))
        })
        .await?;
    let file = glommio::io::DmaFile::open(&path)
        .await
        .map_err(|e| StorageError::glommio(&path, e))?;
    let _ = file.read_at(0, 4096).await;
    let _ = file.close().await;
    Ok(())
}
