//! The shardmq Rust client, on glommio: every future here is `!Send` and runs inside a glommio
//! `LocalExecutor`; one [`Client`] per executor.
//!
//! Map:
//! - [`client`]: [`Client`], shard-aware entry point; one lazy connection per shard; admin calls
//!   (`create_topic`, `list_topics`, `shard_map`), `queue_offsets`, `produce_batch`, `pull`.
//! - [`connection`]: [`Connection`], one TCP connection with pipelined requests matched to
//!   replies by correlation id; the `Hello` handshake.
//! - [`producer`]: [`Producer`], per-queue batching with linger and a bounded in-flight window;
//!   [`SendHandle`] resolves to a record's offset.
//! - [`consumer`]: [`Consumer`], one queue read in order with long-poll pulls.
//! - [`group_calls`]: consumer groups, offsets and queue locks on [`Client`].
//! - [`member`]: [`GroupMember`], joining a group and following its assignment.
//! - [`push_consumer`]: [`PushConsumer`], a group member calling a handler per message
//!   (concurrent, or orderly under queue locks), committing as messages are done.
//! - [`pull_consumer`]: [`PullConsumer`], a group member the application polls and commits.
//! - [`message`]: [`Message`], an owned consumed record; message ids.
//! - [`pull`]: [`PullResult`], an owned, aligned pull reply; validated batches and records.
//! - [`config`]: [`ClientConfig`], the timeouts.
//! - [`error`]: [`ClientError`], every failure as one typed enum.
//! - [`socket`]: [`socket::Socket`], a TCP stream one reader task and serialized writers share.
//! - `frame_io` (frames on a socket, [`Reply`]), `signal` (completion slots, timeouts):
//!   internals.
//!
//! ```no_run
//! # use shardmq_client::{Client, Consumer, Producer, ProducerConfig};
//! # use shardmq_protocol::Record;
//! glommio::LocalExecutor::default().run(async {
//!     let client = Client::connect("127.0.0.1:9876", "example").await?;
//!     client.create_topic("orders", 8).await?;
//!     let producer = Producer::new(&client, ProducerConfig::default())?;
//!     let handle = producer
//!         .send("orders", 3, Record { payload: b"hello".to_vec(), ..Record::default() })
//!         .await?;
//!     let offset = handle.await?;
//!     let mut consumer = Consumer::new(&client, "orders", 3, offset);
//!     let pulled = consumer.poll(100, 1000).await?;
//!     for record in pulled.records()? {
//!         println!("{} {:?}", record.offset, record.payload());
//!     }
//!     Ok::<(), shardmq_client::ClientError>(())
//! })
//! .unwrap();
//! ```

pub mod client;
pub mod config;
pub mod connection;
pub mod consumer;
pub mod error;
mod frame_io;
pub mod group_calls;
pub mod member;
pub mod message;
mod orderly;
pub mod producer;
pub mod pull;
pub mod pull_consumer;
pub mod push_consumer;
mod signal;
pub mod socket;

pub use client::{Client, PendingPull};
pub use config::{ClientConfig, Credentials, TlsConfig};
pub use connection::{Connection, PendingReply};
pub use consumer::Consumer;
pub use error::{ClientError, Result};
pub use frame_io::Reply;
pub use member::{Filter, GroupMember, MemberConfig, Mode, Strategy};
pub use message::Message;
pub use producer::{Producer, ProducerConfig, SendHandle};
pub use pull::{PullResult, RecordIter, RecordRef};
pub use pull_consumer::PullConsumer;
pub use push_consumer::{Handler, HandlerResult, PushConfig, PushConsumer, StartFromWhere};
