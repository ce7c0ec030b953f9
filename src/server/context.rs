//! What every connection on a shard shares, whatever its protocol: the shard's core, the byte
//! budgets, the watchdog, the connection count. Lives on one core (`Rc`).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use event_listener::Event;

use crate::core::Core;
use crate::limits::{REPLY_BYTES_QUEUED_PER_SHARD_MAX, REQUEST_BYTES_BUFFERED_PER_SHARD_MAX};
use crate::server::budget::ByteBudget;
use crate::server::watchdog::Watchdog;

pub struct ShardContext {
    pub core: Rc<Core>,
    open_connections: Cell<u64>,
    /// Notified whenever a connection closes.
    pub connection_closed: Event,
    /// Bytes of request frames every connection of this shard holds while reading or handling
    /// them.
    pub request_budget: ByteBudget,
    /// Bytes of replies every connection of this shard has queued for its writer.
    pub reply_budget: Rc<ByteBudget>,
    /// Closes connections whose frame bodies or socket writes stall.
    pub watchdog: Rc<Watchdog>,
    /// The RocketMQ broker name and remoting address this shard is advertised as, once its
    /// remoting listener is up.
    pub remoting_broker: std::cell::RefCell<Option<(String, String)>>,
    /// Who may do what (`--acl`); `None`: ACL off, every request is served.
    pub acl: Option<std::sync::Arc<crate::acl::Acl>>,
    /// `--tls-cert` / `--tls-key`: the TLS server side (`server::tls`); `None`: TLS is off.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// Every shard's native TLS listener (`--tls-listen`), by shard id, for `HelloReply`.
    pub tls_addresses: std::sync::Arc<std::sync::RwLock<Vec<String>>>,
}

/// One connection's place in the shard's count; given back when dropped, however the
/// connection ends.
pub struct ConnectionSlot {
    ctx: Rc<ShardContext>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.ctx.connection_done();
    }
}

impl ShardContext {
    pub fn new(
        core: Rc<Core>,
        stall_timeout: Duration,
        acl: Option<std::sync::Arc<crate::acl::Acl>>,
    ) -> Self {
        let shard_id = core.shard_id;
        ShardContext {
            core,
            open_connections: Cell::new(0),
            connection_closed: Event::new(),
            request_budget: ByteBudget::new(REQUEST_BYTES_BUFFERED_PER_SHARD_MAX),
            reply_budget: Rc::new(ByteBudget::new(REPLY_BYTES_QUEUED_PER_SHARD_MAX)),
            watchdog: Watchdog::new(shard_id, stall_timeout),
            remoting_broker: std::cell::RefCell::new(None),
            acl,
            tls: None,
            tls_addresses: Default::default(),
        }
    }

    /// Every shard's native TLS address by shard id (empty without `--tls-listen`).
    pub fn tls_addresses(&self) -> Vec<String> {
        self.tls_addresses
            .read()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    /// Counts a connection in; the slot counts it out when dropped.
    pub fn connection_slot(self: &Rc<Self>) -> ConnectionSlot {
        self.open_connections.set(self.open_connections.get() + 1);
        ConnectionSlot { ctx: self.clone() }
    }

    fn connection_done(&self) {
        self.open_connections.set(self.open_connections.get() - 1);
        self.connection_closed.notify(usize::MAX);
    }

    pub fn open_connections(&self) -> u64 {
        self.open_connections.get()
    }
}
