//! The RocketMQ name server, embedded in the broker (on shard 0's executor): clients ask it for
//! topic routes and the cluster's brokers (`../shared/reference/rocketmq-protocol.md` §4.6,
//! §6.0). Routes come straight from the broker's own topic registry and the directory of its
//! shards, each shard a broker of its own: nothing to register, nothing to go stale.
//!
//! - [`routes`]: a topic's route, the cluster, the topic list.
//! - [`connection`]: the name-server protocol on a connection (remoting frames).
//!
//! Requests: GET_ROUTEINFO_BY_TOPIC (105; TBW102 when auto-creation is on, so clients can send
//! to topics that do not exist yet), GET_BROKER_CLUSTER_INFO (106),
//! GET_ALL_TOPIC_LIST_FROM_NAMESERVER (206), GET_TOPICS_BY_CLUSTER (224), the KV config calls
//! (100, 101, 219: a name server without KV entries, as a fresh Java one). Unknown codes get
//! REQUEST_CODE_NOT_SUPPORTED.

mod blocking;
pub mod connection;
pub mod register;
pub mod registry;
pub mod routes;
pub mod service;
pub mod standalone;
