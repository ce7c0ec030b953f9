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
pub mod producer;
pub mod pull;
mod signal;
pub mod socket;

pub use client::{Client, PendingPull};
pub use config::ClientConfig;
pub use connection::{Connection, PendingReply};
pub use consumer::Consumer;
pub use error::{ClientError, Result};
pub use frame_io::Reply;
pub use producer::{Producer, ProducerConfig, SendHandle};
pub use pull::{PullResult, RecordIter, RecordRef};
