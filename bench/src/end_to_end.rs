//! The consumer side of the end-to-end benchmark: one long-polling [`Consumer`] per queue,
//! started at the queue's end before the producers begin, measuring each record from the moment
//! its producer encoded it to the moment a pull reply holding it was decoded here.
//!
//! Producers and consumers share one executor and one clock: a stamped record's payload starts
//! with the microseconds since the run's start when its batch was encoded (`stamp_payload`), so
//! no clock synchronization is involved. Runs on the bench executor.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use shardmq_client::{Client, Consumer};

use crate::report::{new_histogram, record_latency, LatencySummary};

/// Bytes at the start of a stamped payload that hold the send time.
pub const STAMP_BYTES: usize = 8;

/// Writes the microseconds since `start` into the first bytes of `payload`.
pub fn stamp_payload(payload: &mut [u8], start: Instant) {
    let us = start.elapsed().as_micros() as u64;
    payload[..STAMP_BYTES].copy_from_slice(&us.to_le_bytes());
}

pub struct Receivers {
    histogram: RefCell<Histogram<u64>>,
    received: Cell<u64>,
    errors: Cell<u64>,
    stop: Cell<bool>,
    last_receipt: Cell<Instant>,
    start: Instant,
    tasks: RefCell<Vec<glommio::task::JoinHandle<()>>>,
}

impl Receivers {
    /// Starts one consumer per queue at the queue's current end.
    pub async fn start(
        client: &Client,
        topic: &str,
        queues: u32,
        start: Instant,
        wait_ms: u32,
    ) -> Result<Rc<Receivers>, shardmq_client::ClientError> {
        let receivers = Rc::new(Receivers {
            histogram: RefCell::new(new_histogram()),
            received: Cell::new(0),
            errors: Cell::new(0),
            stop: Cell::new(false),
            last_receipt: Cell::new(start),
            start,
            tasks: RefCell::new(Vec::new()),
        });
        for queue in 0..queues {
            let from = client.queue_offsets(topic, queue).await?.max_offset;
            let consumer = Consumer::new(client, topic, queue, from);
            let task = glommio::spawn_local(receive(consumer, receivers.clone(), wait_ms)).detach();
            receivers.tasks.borrow_mut().push(task);
        }
        Ok(receivers)
    }

    /// Waits until `expected` records arrived or none arrived for `idle`, then stops the
    /// consumers. Returns the records received and the latency summary.
    pub async fn finish(&self, expected: u64, idle: Duration) -> (u64, u64, LatencySummary) {
        while self.received.get() < expected && self.last_receipt.get().elapsed() < idle {
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
        self.stop.set(true);
        for task in self.tasks.borrow_mut().drain(..) {
            task.cancel();
        }
        (
            self.received.get(),
            self.errors.get(),
            LatencySummary::from_histogram(&self.histogram.borrow()),
        )
    }
}

async fn receive(mut consumer: Consumer, receivers: Rc<Receivers>, wait_ms: u32) {
    while !receivers.stop.get() {
        match consumer.poll(100_000, wait_ms).await {
            Ok(pulled) => {
                let Ok(records) = pulled.records() else {
                    receivers.errors.set(receivers.errors.get() + 1);
                    continue;
                };
                let now_us = receivers.start.elapsed().as_micros() as u64;
                let mut histogram = receivers.histogram.borrow_mut();
                let mut count = 0;
                for record in records {
                    let payload = record.payload();
                    if payload.len() >= STAMP_BYTES {
                        let mut sent = [0u8; STAMP_BYTES];
                        sent.copy_from_slice(&payload[..STAMP_BYTES]);
                        let sent_us = u64::from_le_bytes(sent);
                        record_latency(
                            &mut histogram,
                            Duration::from_micros(now_us.saturating_sub(sent_us)),
                        );
                    }
                    count += 1;
                }
                if count > 0 {
                    receivers.received.set(receivers.received.get() + count);
                    receivers.last_receipt.set(Instant::now());
                }
            }
            Err(_) => {
                receivers.errors.set(receivers.errors.get() + 1);
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip() {
        let start = Instant::now() - Duration::from_millis(5);
        let mut payload = vec![0u8; 32];
        stamp_payload(&mut payload, start);
        let us = u64::from_le_bytes(payload[..8].try_into().unwrap());
        assert!(us >= 5_000, "{us}");
        assert!(
            payload[8..].iter().all(|&b| b == 0),
            "only the stamp bytes change"
        );
    }
}
