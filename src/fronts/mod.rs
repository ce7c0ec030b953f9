//! The wire protocols, each a front end of the broker core: it decodes requests into core calls
//! and encodes the core's plain results. `native` is shardmq's own protocol.

pub mod native;
pub mod remoting;
