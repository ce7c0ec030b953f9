//! The NATS JetStream driver: starts `nats-server -js` on loopback with file storage in a fresh
//! directory and runs the engine's workload against it over the NATS protocol (`proto`,
//! `connection`; no tokio client, so it runs on the same glommio executors as every driver).
//!
//! Mapping: one stream `bench_<topic>` with file storage over the subjects `<topic>.*`; queue
//! `q` is the subject `<topic>.<q>`. A batch of N records is N `PUB`s written back to back, each
//! asking for a JetStream ack on this connection's inbox, and is acknowledged when all N acks
//! (`{"stream":…,"seq":…}`) have come back — the same unit as a shardmq batch. An end-to-end
//! consumer is an ephemeral push consumer per queue (`deliver_policy new`, `ack_policy none`,
//! filtered to the queue's subject) delivering to a subscription of its own connection.

mod connection;
pub mod proto;

use std::ffi::OsString;
use std::rc::Rc;
use std::time::Duration;

use connection::{Mailbox, NatsConnection};

use crate::engine::{Driver, Position, Publisher, Subscriber};
use crate::error::BenchError;

use super::{PeerServer, PeerTarget};

/// JetStream's "stream name already in use" error code (another executor created it first).
const STREAM_EXISTS: u64 = 10058;

/// Starts `nats-server` with JetStream file storage in a fresh directory.
pub fn start(cpu: Option<usize>) -> Result<PeerServer, BenchError> {
    PeerServer::start("nats-server", cpu, &[], |port, dir| {
        let mut args: Vec<OsString> = ["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"]
            .iter()
            .map(OsString::from)
            .collect();
        args.push(dir.as_os_str().to_owned());
        args
    })
}

fn peer_error(message: impl std::fmt::Display) -> BenchError {
    BenchError::Peer {
        system: "nats-jetstream",
        message: message.to_string(),
    }
}

/// The JetStream API error in a reply, if it is one: `(code, description)`.
fn api_error(reply: &[u8]) -> Option<(u64, String)> {
    let value: serde_json::Value = serde_json::from_slice(reply).ok()?;
    let error = value.get("error")?;
    Some((
        error.get("err_code").and_then(|c| c.as_u64()).unwrap_or(0),
        error.to_string(),
    ))
}

/// One JetStream API call; its JSON reply (which may carry an API error, see `api_error`).
async fn api(
    connection: &NatsConnection,
    subject: &str,
    body: &serde_json::Value,
) -> Result<Vec<u8>, BenchError> {
    let mut replies = connection
        .request(subject, 1, body.to_string().as_bytes())
        .await
        .map_err(peer_error)?;
    replies
        .pop()
        .ok_or_else(|| peer_error("no reply"))?
        .map_err(|e| peer_error(format!("{subject}: {e} (is JetStream on?)")))
}

/// Reaches one nats-server; one per bench executor.
pub struct Nats {
    pub addr: String,
    pub topic: String,
    pub queues: u32,
    pub timeout: Duration,
    pub wait: Duration,
}

impl From<PeerTarget> for Nats {
    fn from(t: PeerTarget) -> Self {
        Nats {
            addr: t.addr,
            topic: t.topic,
            queues: t.queues,
            timeout: t.timeout,
            wait: t.wait,
        }
    }
}

impl Nats {
    fn stream(&self) -> String {
        format!(
            "bench_{}",
            self.topic
                .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        )
    }

    async fn connect(&self) -> Result<NatsConnection, BenchError> {
        NatsConnection::connect(&self.addr, self.timeout)
            .await
            .map_err(peer_error)
    }
}

impl Driver for Nats {
    type Publisher = NatsPublisher;
    type Subscriber = NatsSubscriber;

    fn system(&self) -> &'static str {
        "nats-jetstream"
    }

    /// Creates the stream (idempotent: the same config again is accepted).
    async fn queues(&self) -> Result<u32, BenchError> {
        let connection = self.connect().await?;
        let stream = self.stream();
        let config = serde_json::json!({
            "name": stream,
            "subjects": [format!("{}.*", self.topic)],
            "storage": "file",
        });
        let reply = api(
            &connection,
            &format!("$JS.API.STREAM.CREATE.{stream}"),
            &config,
        )
        .await?;
        match api_error(&reply) {
            None => Ok(self.queues),
            Some((STREAM_EXISTS, _)) => Ok(self.queues),
            Some((_, e)) => Err(peer_error(format!("creating stream {stream}: {e}"))),
        }
    }

    async fn publisher(&self, _index: u32, _queues: &[u32]) -> Result<NatsPublisher, BenchError> {
        Ok(NatsPublisher {
            connection: self.connect().await?,
            subjects: (0..self.queues)
                .map(|q| format!("{}.{q}", self.topic))
                .collect(),
        })
    }

    async fn subscriber(&self, queue: u32, from: Position) -> Result<NatsSubscriber, BenchError> {
        let connection = self.connect().await?;
        let deliver = format!("_DELIVER.{}.{queue}", self.stream());
        let mailbox = connection.subscribe(&deliver).await.map_err(peer_error)?;
        let stream = self.stream();
        let request = serde_json::json!({
            "stream_name": stream,
            "config": {
                "deliver_subject": deliver,
                "deliver_policy": match from {
                    Position::Start => "all",
                    Position::End => "new",
                },
                "ack_policy": "none",
                "replay_policy": "instant",
                "filter_subject": format!("{}.{queue}", self.topic),
            },
        });
        let create = (format!("$JS.API.CONSUMER.CREATE.{stream}"), request);
        let mut subscriber = NatsSubscriber {
            connection,
            mailbox,
            wait: self.wait,
            create: Some(create),
        };
        // A push consumer starts delivering the moment it exists. From the end: create it now,
        // so "the end" is this instant. From the start: create it at the first poll, after the
        // start gate, or the backlog would stream in while the clock is not yet running.
        if from == Position::End {
            subscriber.create_consumer().await?;
        }
        Ok(subscriber)
    }
}

pub struct NatsPublisher {
    connection: NatsConnection,
    subjects: Vec<String>,
}

pub struct NatsBatch {
    count: u32,
    payload: Vec<u8>,
}

impl Publisher for NatsPublisher {
    type Batch = NatsBatch;

    fn encode(&self, count: u32, payload: &[u8], _tag: Option<&str>) -> NatsBatch {
        NatsBatch {
            count,
            payload: payload.to_vec(),
        }
    }

    async fn publish(&self, queue: u32, batch: &NatsBatch) -> Result<u32, BenchError> {
        let subject = self
            .subjects
            .get(queue as usize)
            .ok_or_else(|| peer_error(format!("no subject for queue {queue}")))?;
        let replies = self
            .connection
            .request(subject, batch.count as usize, &batch.payload)
            .await
            .map_err(peer_error)?;
        let mut acked = 0;
        for reply in replies {
            match reply {
                Ok(ack) => match api_error(&ack) {
                    None => acked += 1,
                    Some((_, e)) => return Err(peer_error(format!("publish: {e}"))),
                },
                Err(e) => return Err(peer_error(format!("publish: {e}"))),
            }
        }
        Ok(acked)
    }
}

pub struct NatsSubscriber {
    connection: NatsConnection,
    mailbox: Rc<Mailbox>,
    wait: Duration,
    /// The CONSUMER.CREATE call (subject, request) not made yet.
    create: Option<(String, serde_json::Value)>,
}

impl NatsSubscriber {
    async fn create_consumer(&mut self) -> Result<(), BenchError> {
        let Some((subject, request)) = self.create.take() else {
            return Ok(());
        };
        let reply = api(&self.connection, &subject, &request).await?;
        match api_error(&reply) {
            Some((_, e)) => Err(peer_error(format!("creating a consumer: {e}"))),
            None => Ok(()),
        }
    }
}

impl Subscriber for NatsSubscriber {
    async fn poll(&mut self, each: &mut dyn FnMut(&[u8])) -> Result<u64, BenchError> {
        self.create_consumer().await?;
        if self.mailbox.queue.borrow().is_empty() {
            let arrived = self.mailbox.arrived.listen();
            if self.mailbox.queue.borrow().is_empty() {
                let _ = glommio::timer::timeout(self.wait, async {
                    arrived.await;
                    Ok::<_, glommio::GlommioError<()>>(())
                })
                .await;
            }
        }
        if let Some(why) = self.connection.closed() {
            return Err(peer_error(why));
        }
        let drained: Vec<Vec<u8>> = self.mailbox.queue.borrow_mut().drain(..).collect();
        for payload in &drained {
            each(payload);
        }
        Ok(drained.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Draining from the start must not begin before the first poll (the start gate): a push
    /// consumer created at subscribe time streamed the backlog in while no clock ran.
    #[test]
    fn a_backlog_is_delivered_only_once_polled() {
        let server = start(None).expect("nats-server (apt-get install nats-server)");
        let addr = format!("127.0.0.1:{}", server.port);
        let cpu = crate::runtime::choose_cpu(None, &crate::runtime::allowed_cpus()).unwrap();
        crate::runtime::run_pinned("nats-test", cpu, 0, move || async move {
            let nats = Nats {
                addr,
                topic: "lazy".into(),
                queues: 1,
                timeout: Duration::from_secs(5),
                wait: Duration::from_millis(200),
            };
            assert_eq!(nats.queues().await.unwrap(), 1);
            let publisher = nats.publisher(0, &[0]).await.unwrap();
            let batch = publisher.encode(10, b"backlog", None);
            assert_eq!(publisher.publish(0, &batch).await.unwrap(), 10);
            let mut subscriber = nats.subscriber(0, Position::Start).await.unwrap();
            glommio::timer::sleep(Duration::from_millis(200)).await;
            assert!(
                subscriber.mailbox.queue.borrow().is_empty(),
                "nothing is delivered before the first poll"
            );
            let mut seen = 0;
            while seen < 10 {
                seen += subscriber
                    .poll(&mut |p| assert_eq!(p, b"backlog"))
                    .await
                    .unwrap();
            }
            assert_eq!(seen, 10);
        })
        .unwrap();
    }

    #[test]
    fn api_errors_are_recognized() {
        assert_eq!(api_error(br#"{"stream":"s","seq":3}"#), None);
        let (code, _) =
            api_error(br#"{"error":{"code":400,"err_code":10058,"description":"in use"}}"#)
                .unwrap();
        assert_eq!(code, STREAM_EXISTS);
        assert_eq!(api_error(b"not json"), None);
    }
}
