//! [`ClientConfig`]: the knobs of a [`crate::Client`] and its connections. Plain data.
//!
//! Every wait in this crate is bounded by one of these durations: connecting by
//! `connect_timeout`, the handshake and every request by `request_timeout` (a pull adds its own
//! long-poll `wait_ms` on top, since the broker may legitimately hold it that long).

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Bound on one TCP connect (per resolved address).
    pub connect_timeout: Duration,
    /// Bound on one request, from queuing its frame to receiving its reply.
    pub request_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}
