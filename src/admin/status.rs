//! `admin broker status` and `admin cluster`: every shard's state, asked of each shard itself.
//!
//! `broker status` is what an operator checks first (connections, log, disk, whether writes
//! are refused, the version); `cluster` shows each shard as the RocketMQ broker it is
//! advertised as (`mqadmin clusterList`'s view). Both exit 1 when a shard refuses writes, so a
//! script can alert on it.

use serde_json::{json, Value};
use shardmq_client::Client;
use shardmq_protocol::messages::ShardStats;

use super::{AdminError, Shown};

async fn every_shard(client: &Client) -> Result<Vec<ShardStats>, AdminError> {
    let shards = client.shard_map().await?.shard_count;
    let mut stats = Vec::with_capacity(shards as usize);
    for shard in 0..shards {
        stats.push(client.shard_stats(shard).await?);
    }
    Ok(stats)
}

fn size(bytes: Option<u64>) -> String {
    match bytes {
        None => "-".into(),
        Some(b) if b >= 1 << 30 => format!("{:.1}GiB", b as f64 / f64::from(1u32 << 30)),
        Some(b) if b >= 1 << 20 => format!("{:.1}MiB", b as f64 / f64::from(1u32 << 20)),
        Some(b) => format!("{}KiB", b / 1024),
    }
}

fn used(s: &ShardStats) -> String {
    s.disk_used_per_mille
        .map_or("-".into(), |p| format!("{:.1}%", f64::from(p) / 10.0))
}

fn shard_json(s: &ShardStats) -> Value {
    json!({
        "shard": s.shard_id,
        "version": s.broker_version,
        "connections": s.connections,
        "segments": s.segments,
        "logBytes": s.log_bytes,
        "diskUsedPercent": s.disk_used_per_mille.map(|p| f64::from(p) / 10.0),
        "diskFreeBytes": s.disk_free_bytes,
        "refusingWrites": s.refusing_writes,
        "requestBytesBuffered": s.request_bytes_buffered,
        "replyBytesQueued": s.reply_bytes_queued,
        "rocketmqBroker": s.rocketmq_broker,
        "remotingAddr": s.remoting_addr,
        "logWrittenBytes": s.log_written_bytes,
        "logDeviceWriteBytes": s.log_device_write_bytes,
        "fsyncs": s.fsyncs,
        "syncedBatches": s.synced_batches,
    })
}

/// A shard that refuses writes makes the command fail (exit 1) after printing.
fn verdict(stats: &[ShardStats], shown: Shown) -> Result<(Shown, Option<String>), AdminError> {
    let refusing: Vec<u32> = stats
        .iter()
        .filter(|s| s.refusing_writes)
        .map(|s| s.shard_id)
        .collect();
    let problem = (!refusing.is_empty())
        .then(|| format!("shards {refusing:?} refuse writes (disk full or above its refuse mark)"));
    Ok((shown, problem))
}

pub async fn broker_status(client: &Client) -> Result<(Shown, Option<String>), AdminError> {
    let stats = every_shard(client).await?;
    let mut table = format!(
        "{:>5} {:>11} {:>8} {:>10} {:>9} {:>10} {:>8} {:>10} {:>10} {:>8} {:>9}\n",
        "SHARD",
        "CONNECTIONS",
        "SEGMENTS",
        "LOG",
        "DISK USED",
        "DISK FREE",
        "WRITES",
        "WRITTEN",
        "TO DEVICE",
        "FSYNCS",
        "VERSION"
    );
    for s in &stats {
        table.push_str(&format!(
            "{:>5} {:>11} {:>8} {:>10} {:>9} {:>10} {:>8} {:>10} {:>10} {:>8} {:>9}\n",
            s.shard_id,
            s.connections,
            s.segments,
            size(Some(s.log_bytes)),
            used(s),
            size(s.disk_free_bytes),
            if s.refusing_writes { "REFUSED" } else { "ok" },
            size(Some(s.log_written_bytes)),
            size(Some(s.log_device_write_bytes)),
            s.fsyncs,
            s.broker_version
        ));
    }
    let json = json!({ "shards": stats.iter().map(shard_json).collect::<Vec<_>>() });
    verdict(&stats, Shown { table, json })
}

pub async fn cluster(client: &Client) -> Result<(Shown, Option<String>), AdminError> {
    let stats = every_shard(client).await?;
    let mut table = format!(
        "{:<24} {:>5} {:<22} {:>9} {:>8}\n",
        "ROCKETMQ BROKER", "SHARD", "REMOTING", "VERSION", "WRITES"
    );
    for s in &stats {
        let name = if s.rocketmq_broker.is_empty() {
            "(remoting off)"
        } else {
            &s.rocketmq_broker
        };
        table.push_str(&format!(
            "{:<24} {:>5} {:<22} {:>9} {:>8}\n",
            name,
            s.shard_id,
            if s.remoting_addr.is_empty() {
                "-"
            } else {
                &s.remoting_addr
            },
            s.broker_version,
            if s.refusing_writes { "REFUSED" } else { "ok" }
        ));
    }
    let brokers: Vec<Value> = stats
        .iter()
        .map(|s| {
            json!({
                "brokerName": s.rocketmq_broker,
                "shard": s.shard_id,
                "addr": s.remoting_addr,
                "version": s.broker_version,
                "refusingWrites": s.refusing_writes,
            })
        })
        .collect();
    verdict(
        &stats,
        Shown {
            table,
            json: json!({ "brokers": brokers }),
        },
    )
}
