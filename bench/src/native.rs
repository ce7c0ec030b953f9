//! The shardmq native-protocol [`Driver`]: each executor has its own [`Client`]; each producer
//! its own client too (its own connections, as separate producer processes would have); one
//! consumer client per executor shares its connections across the queues' consumers.
//!
//! Two ways to publish: by default every bench batch is one produce request (the batch encoded
//! by the bench). With `linger` set (`--linger-us`), the application-level workload is "one
//! message at a time": each message goes through the client's [`Producer`], which coalesces the
//! messages its concurrent senders hand it per queue (sealing a batch after `linger`, at 1000
//! records or 1 MiB), and each message is measured from its `send` to its own offset.
//!
//! Groups (`--group`): each consumer executor joins as one [`GroupMember`] with the run's filter,
//! waits until the group holds exactly this run's members (a member left over from an earlier
//! run keeps the start waiting until its session expires, since it would be assigned queues no
//! one here reads), and consumes its assigned queues from their current ends, filtering on the
//! broker and committing in its pulls. The members leave when the run ends.

use std::cell::{OnceCell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use shardmq_client::{
    Client, ClientConfig, Consumer, Credentials, Filter, GroupMember, MemberConfig, Mode, Producer,
    ProducerConfig, TlsConfig,
};
use shardmq_protocol::batch::encode_batch;
use shardmq_protocol::Record;

use crate::engine::{BenchFilter, Driver, GroupRun, Position, Publisher, Subscriber};
use crate::error::BenchError;

/// How long a member waits for the group to hold exactly this run's members.
const GROUP_SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Session timeout of bench members: a member of a killed run is gone after this.
const MEMBER_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// Records per pull of an end-to-end consumer.
const PULL_MAX_MESSAGES: u32 = 100_000;

/// The ACL account of `SHARDMQ_ACCESS_KEY` / `SHARDMQ_SECRET_KEY`, if set.
pub fn credentials() -> Result<Option<Credentials>, BenchError> {
    Credentials::from_env().map_err(BenchError::InvalidArgs)
}

/// The TLS client side of `--tls-ca`, if given.
pub fn tls(run: &crate::args::RunArgs) -> Result<Option<TlsConfig>, BenchError> {
    run.tls_ca
        .as_deref()
        .map(|path| TlsConfig::trusting_pem_file(path).map_err(BenchError::InvalidArgs))
        .transpose()
}

pub struct Native {
    pub broker: String,
    pub topic: String,
    pub config: ClientConfig,
    /// Long-poll wait of consumers' pulls, ms.
    pub wait_ms: u32,
    /// Client batching: publish message by message through a [`Producer`] with this linger.
    pub linger: Option<Duration>,
    /// The executor's consumer client, opened by the first subscriber.
    consumer_client: OnceCell<Client>,
    /// The group members this executor joined (left by `close`).
    members: RefCell<Vec<Rc<GroupMember>>>,
}

impl Native {
    pub fn new(broker: &str, topic: &str, timeout: Duration, wait_ms: u32) -> Native {
        Native {
            broker: broker.to_owned(),
            topic: topic.to_owned(),
            config: ClientConfig {
                request_timeout: timeout,
                ..ClientConfig::default()
            },
            wait_ms,
            linger: None,
            consumer_client: OnceCell::new(),
            members: RefCell::new(Vec::new()),
        }
    }

    /// Connect over TLS (`--tls-ca`).
    pub fn with_tls(mut self, tls: Option<TlsConfig>) -> Native {
        self.config.tls = tls;
        self
    }

    /// Connect as this ACL account (a broker with `--acl`).
    pub fn with_credentials(mut self, credentials: Option<Credentials>) -> Native {
        self.config.credentials = credentials;
        self
    }

    /// Publish through the client's batching [`Producer`] with `linger`, message by message.
    pub fn with_linger(mut self, linger: Option<Duration>) -> Native {
        self.linger = linger;
        self
    }

    async fn connect(&self, name: &str) -> Result<Client, BenchError> {
        Ok(Client::connect_with(&self.broker, name, self.config.clone()).await?)
    }

    async fn consumer_client(&self) -> Result<&Client, BenchError> {
        if self.consumer_client.get().is_none() {
            let client = self.connect("shardmq-bench-e2e").await?;
            let _ = self.consumer_client.set(client);
        }
        Ok(self.consumer_client.get().expect("set above"))
    }
}

/// The member id of bench member `member` of this process.
fn member_id(member: u32) -> String {
    format!("shardmq-bench-{}-{member}", std::process::id())
}

pub(crate) fn client_filter(filter: &BenchFilter) -> Filter {
    match filter {
        BenchFilter::Tags(e) => Filter::Tags(e.clone()),
        BenchFilter::Sql(e) => Filter::Sql92(e.clone()),
    }
}

/// Waits until `joined` sees exactly the members `expected` (sorted).
async fn settle(joined: &GroupMember, expected: &[String]) -> Result<(), BenchError> {
    let deadline = Instant::now() + GROUP_SETTLE_TIMEOUT;
    loop {
        let seen = joined.members();
        if seen == expected {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(BenchError::InvalidArgs(format!(
                "group {} did not settle to this run's {} members within {} s: it has {seen:?}",
                joined.config().group,
                expected.len(),
                GROUP_SETTLE_TIMEOUT.as_secs()
            )));
        }
        let generation = joined.generation();
        futures_lite::future::or(joined.changed_since(generation), async {
            glommio::timer::sleep(left.min(Duration::from_millis(500))).await;
        })
        .await;
    }
}

/// The producer timestamp of bench records: wall-clock ms at encoding.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Driver for Native {
    type Publisher = NativePublisher;
    type Subscriber = NativeSubscriber;

    fn system(&self) -> &'static str {
        "shardmq"
    }

    async fn queues(&self) -> Result<u32, BenchError> {
        let probe = self.connect("shardmq-bench").await?;
        let topic = probe
            .topic(&self.topic)
            .await?
            .ok_or_else(|| BenchError::TopicNotFound(self.topic.clone()))?;
        Ok(topic.queues)
    }

    async fn publisher(&self, index: u32, queues: &[u32]) -> Result<NativePublisher, BenchError> {
        let client = self.connect(&format!("shardmq-bench-{index}")).await?;
        for &q in queues {
            client.connection_for_queue(&self.topic, q).await?;
        }
        let producer = match self.linger {
            Some(linger) => Some(Producer::new(
                &client,
                ProducerConfig {
                    linger,
                    // Bounded by the bench's own in-flight limit of messages, not here.
                    max_in_flight_batches: 64,
                    ..ProducerConfig::default()
                },
            )?),
            None => None,
        };
        Ok(NativePublisher {
            client,
            producer,
            topic: self.topic.clone(),
        })
    }

    async fn subscriber(&self, queue: u32, from: Position) -> Result<NativeSubscriber, BenchError> {
        let client = self.consumer_client().await?;
        let offsets = client.queue_offsets(&self.topic, queue).await?;
        let from = match from {
            Position::Start => offsets.min_offset,
            Position::End => offsets.max_offset,
        };
        Ok(NativeSubscriber {
            consumer: Consumer::new(client, &self.topic, queue, from),
            wait_ms: self.wait_ms,
        })
    }

    async fn group_subscribers(
        &self,
        group: &GroupRun,
        member: u32,
        members: u32,
    ) -> Result<Vec<NativeSubscriber>, BenchError> {
        let client = self.consumer_client().await?;
        let filter = group
            .filter
            .as_ref()
            .map_or_else(Filter::all, client_filter);
        let config = MemberConfig {
            member_id: member_id(member),
            mode: if group.broadcasting {
                Mode::Broadcasting
            } else {
                Mode::Clustering
            },
            subscriptions: vec![(self.topic.clone(), filter.clone())],
            session_timeout: MEMBER_SESSION_TIMEOUT,
            ..MemberConfig::new(&group.name, &self.topic)
        };
        let offsets_key = config.offsets_key();
        let joined = GroupMember::join(client, config).await?;
        self.members.borrow_mut().push(joined.clone());
        let mut expected: Vec<String> = (0..members).map(member_id).collect();
        expected.sort();
        settle(&joined, &expected).await?;
        let mut subscribers = Vec::new();
        for queue in joined.assignment() {
            let end = client
                .queue_offsets(&queue.topic, queue.queue_id)
                .await?
                .max_offset;
            let consumer = Consumer::new(client, &queue.topic, queue.queue_id, end)
                .with_filter(filter.clone())
                .with_group_commits(&offsets_key);
            subscribers.push(NativeSubscriber {
                consumer,
                wait_ms: self.wait_ms,
            });
        }
        Ok(subscribers)
    }

    async fn close(&self) {
        let members: Vec<_> = self.members.borrow_mut().drain(..).collect();
        for member in members {
            if let Err(e) = member.leave().await {
                tracing::warn!("leaving the group failed: {e}");
            }
        }
    }
}

pub struct NativePublisher {
    client: Client,
    /// Client batching (`linger`): messages go through this producer one by one.
    producer: Option<Producer>,
    topic: String,
}

/// A request's records: a batch encoded by the bench, or (client batching) the one message to
/// hand to the producer.
pub enum NativeBatch {
    Encoded(Vec<u8>),
    Message(Record),
}

impl Publisher for NativePublisher {
    type Batch = NativeBatch;

    fn encode(&self, count: u32, payload: &[u8], tag: Option<&str>) -> NativeBatch {
        let timestamp_ms = now_ms();
        let records: Vec<Record> = (0..count)
            .map(|_| Record {
                born_timestamp_ms: timestamp_ms,
                tags: tag.unwrap_or_default().to_owned(),
                payload: payload.to_vec(),
                ..Record::default()
            })
            .collect();
        match (&self.producer, records.len()) {
            (Some(_), 1) => NativeBatch::Message(records.into_iter().next().expect("one record")),
            _ => NativeBatch::Encoded(encode_batch(&records).to_vec()),
        }
    }

    async fn publish(&self, queue: u32, batch: &NativeBatch) -> Result<u32, BenchError> {
        match (batch, &self.producer) {
            (NativeBatch::Message(record), Some(producer)) => {
                producer
                    .send(&self.topic, queue, record.clone())
                    .await?
                    .await?;
                Ok(1)
            }
            (NativeBatch::Encoded(bytes), _) => {
                let reply = self.client.produce_batch(&self.topic, queue, bytes).await?;
                Ok(reply.count)
            }
            (NativeBatch::Message(_), None) => {
                unreachable!("messages are made only with a producer")
            }
        }
    }
}

pub struct NativeSubscriber {
    consumer: Consumer,
    wait_ms: u32,
}

impl Subscriber for NativeSubscriber {
    async fn poll(&mut self, each: &mut dyn FnMut(&[u8])) -> Result<u64, BenchError> {
        let pulled = self.consumer.poll(PULL_MAX_MESSAGES, self.wait_ms).await?;
        let mut count = 0;
        for record in pulled.records().map_err(BenchError::Corrupt)? {
            each(record.payload());
            count += 1;
        }
        Ok(count)
    }
}
