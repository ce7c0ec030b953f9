//! One life of the simulated shard: open (recover), check against the oracle, then producers,
//! checkpoints and consumer-offset commits run until the power fails.
//!
//! Everything random is drawn from the simulated disk's one generator, in an order the
//! executor's scheduling fixes: a seed replays exactly.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use shardmq_protocol::batch::{encode_batch, Record};
use shardmq_protocol::ValidatedBatch;
use shardmq_shards::sim_disk::{FaultRates, Mounted};
use shardmq_shards::{FlushMode, ShardStore, StoreConfig};

use crate::oracle::{offset_key, Oracle, RecordSpec, TOPIC};

pub const QUEUES: u32 = 3;
const APPENDS_PER_LIFE: u32 = 40;
const HOUR: Duration = Duration::from_secs(3600);

/// A shard small enough that a life rolls segments and spans index chunks: 64 KiB segments,
/// 4 KiB write buffers, two writes in flight. Every timer is an hour: the simulation itself
/// decides when checkpoints and offset writes happen.
pub fn config(dir: &Path) -> StoreConfig {
    let mut config = StoreConfig::new(0, dir.to_path_buf());
    config.segment_bytes = 64 * 1024;
    config.write_buffer_bytes = 4096;
    config.write_behind_buffers = 2;
    config.hot_tail_bytes = 64 * 1024;
    config.index_resident_chunks = 2;
    config.flush = FlushMode::Sync;
    config.checkpoint_interval = HOUR;
    config.offsets_flush_interval = HOUR;
    config.busy_after = HOUR;
    // A budget the simulated writer never comes near: pacing (which measures the disk's rate
    // against the wall clock) never acts, so no timer decides an order.
    config.write_behind_bytes = Some(1 << 30);
    config.retention.max_age = None;
    config.retention.interval = HOUR;
    config
}

/// Up to 4 records of up to 2 KB, each payload a rotation of one byte pattern (a misplaced
/// sector shows as a difference).
fn records_for(disk: &Mounted, id: u64) -> Vec<RecordSpec> {
    let pattern: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
    let count = 1 + disk.draw(4);
    (0..count)
        .map(|n| {
            let len = 1 + disk.draw(2000) as usize;
            let rotation = (id as usize * 31 + n as usize * 7) % 256;
            let mut payload = Vec::with_capacity(len);
            while payload.len() < len {
                let take = (len - payload.len()).min(256);
                payload.extend_from_slice(&pattern[rotation..rotation + take]);
            }
            (format!("b{id}.{n}"), payload)
        })
        .collect()
}

fn encode(records: &[RecordSpec]) -> ValidatedBatch {
    let records: Vec<Record> = records
        .iter()
        .map(|(key, payload)| Record {
            born_timestamp_ms: 1,
            keys: vec![key.clone()],
            payload: payload.clone(),
            ..Record::default()
        })
        .collect();
    ValidatedBatch::new(BytesMut::from(&encode_batch(&records)[..])).expect("a valid batch")
}

/// Appends to one queue until the power fails, an append is refused, or the life's appends
/// are done; each answered append may commit the group's offset there.
async fn produce(
    store: Rc<ShardStore>,
    disk: Arc<Mounted>,
    oracle: Rc<RefCell<Oracle>>,
    queue: u32,
) {
    for _ in 0..APPENDS_PER_LIFE {
        if disk.crashed() {
            return;
        }
        let (id, batch) = {
            let mut oracle = oracle.borrow_mut();
            let (id, records) = oracle.attempt(queue, |id| records_for(&disk, id));
            (id, encode(records))
        };
        let answered = match store.append(TOPIC, queue, batch).await {
            Ok(outcome) => store.acknowledgeable(outcome.end).await.map(|()| outcome),
            Err(err) => Err(err),
        };
        let Ok(outcome) = answered else {
            // The writer failed (a fault, or the crash): the life's producing ends here. Going
            // on would race the store's repair, which waits on a wall-clock backoff, and a seed
            // would no longer replay exactly (repair itself: `log_repair_tests`).
            oracle.borrow_mut().refused += 1;
            return;
        };
        oracle.borrow_mut().acknowledged(id);
        if disk.draw(3) == 0 {
            let next = outcome.base_offset + u64::from(outcome.count);
            oracle.borrow_mut().committing(queue, next);
            store.consumer_offsets().commit(offset_key(queue), next);
            if store.consumer_offsets().durable().await.is_ok() {
                oracle.borrow_mut().commit_durable(queue, next);
            }
        }
    }
}

/// Checkpoints at seeded moments while the producers run.
async fn checkpoints(store: Rc<ShardStore>, disk: Arc<Mounted>, done: Rc<RefCell<u32>>) {
    while *done.borrow() < QUEUES && !disk.crashed() {
        for _ in 0..disk.draw(40) {
            futures_lite::future::yield_now().await;
        }
        let _ = store.checkpoint().await;
    }
}

/// Opens the store on what the last crash left (faults off: a real start on a failing disk
/// fails, and that is not what is tested), checks it, then runs the life until the crash.
pub async fn life(
    disk: Arc<Mounted>,
    dir: &Path,
    oracle: Rc<RefCell<Oracle>>,
    faults: FaultRates,
    last: bool,
) -> Result<(), String> {
    disk.set_faults(FaultRates::default());
    let store = ShardStore::open(config(dir), None)
        .await
        .map_err(|e| format!("the store did not start: {e}"))?;
    let store = Rc::new(store);
    let mut checking = std::mem::take(&mut *oracle.borrow_mut());
    let checked = checking.check_recovered(&store, QUEUES).await;
    *oracle.borrow_mut() = checking;
    if let Err(e) = checked {
        let _ = store.close().await;
        return Err(e);
    }
    if last {
        return store.close().await.map_err(|e| format!("closing: {e}"));
    }
    disk.set_faults(faults);
    disk.arm_crash(disk.draw(600));
    let done = Rc::new(RefCell::new(0));
    let producers: Vec<_> = (0..QUEUES)
        .map(|queue| {
            let (store, disk, oracle, done) =
                (store.clone(), disk.clone(), oracle.clone(), done.clone());
            glommio::spawn_local(async move {
                produce(store, disk, oracle, queue).await;
                *done.borrow_mut() += 1;
            })
        })
        .collect();
    let checkpointer = glommio::spawn_local(checkpoints(store.clone(), disk.clone(), done));
    for producer in producers {
        producer.await;
    }
    checkpointer.await;
    disk.crash_now();
    // What the crash left running stops here (every operation fails): the next life, on the
    // same executor, starts with nothing of this one.
    let _ = store.close().await;
    Ok(())
}
