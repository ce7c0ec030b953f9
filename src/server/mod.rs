//! Serving clients on a shard, whatever the protocol: the connection machinery every front end
//! uses — byte budgets, the body reader, the reply queue and its writer, the closer, the
//! watchdog, listeners — and the per-shard context that ties them to the core.

pub mod body;
pub mod budget;
pub mod closer;
pub mod connection;
pub mod context;
pub mod listener;
pub mod outbox;
pub mod tls;
pub mod watchdog;
