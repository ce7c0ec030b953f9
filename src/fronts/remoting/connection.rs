//! The remoting protocol's part of a connection (`server::connection` runs the loop): commands
//! read and dispatched in arrival order, responses echoing the request's opaque, oneway requests
//! never answered (not even their failures), group changes pushed to the clients as
//! NOTIFY_CONSUMER_IDS_CHANGED, the clients heard here leaving their groups when it closes.
//!
//! Responses from the client (to requests the broker pushed) are read and dropped: the only
//! requests the broker sends are oneway.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};

use glommio::net::TcpStream;
use shardmq_protocol::remoting::codes::{command_flag, request};
use shardmq_protocol::remoting::RemotingCommand;

use super::dispatch::{dispatch, Answer};
use super::frame_io::{read_command, reply, InCommand};
use super::pull::PULL_BODY_BYTES_MAX;
use super::state::RemotingShard;
use crate::core::groups::NotifyTarget;
use crate::core::membership::GroupNotifier;
use crate::limits::HANDSHAKE_TIMEOUT;
use crate::limits::PULL_REPLY_HEAD_BYTES;
use crate::server::connection::{self, Conn, FrameFailure, Handled, Protocol, Reader};
use crate::server::context::ShardContext;
use crate::server::outbox::{Reply, SyncGate};
use crate::server::tls;

/// The remoting protocol's state of one connection.
pub struct Remoting {
    pub shard: Rc<RemotingShard>,
    /// The client's address (a message's born host).
    pub peer_addr: SocketAddr,
    pub notify: NotifyTarget,
    /// `(group, client id)` that heartbeated here: they leave their groups when it closes.
    pub clients: RefCell<BTreeSet<(String, String)>>,
    next_opaque: Cell<i32>,
    /// Requests the ACL refused on this connection.
    pub acl_refusals: Cell<u64>,
}

impl Remoting {
    fn next_opaque(&self) -> i32 {
        let opaque = self.next_opaque.get();
        self.next_opaque.set(opaque.wrapping_add(1).max(1));
        opaque
    }
}

/// Tells the clients on a connection that their group changed.
struct Notifier {
    connection: Weak<Conn<Remoting>>,
}

impl GroupNotifier for Notifier {
    fn group_changed(&self, group: &str, _generation: u64) {
        let Some(conn) = self.connection.upgrade() else {
            return;
        };
        let permissions = conn.ctx.core.group_view.permissions(group);
        if permissions.is_some_and(|p| !p.notify) {
            return;
        }
        let mut notify = RemotingCommand::request(
            request::NOTIFY_CONSUMER_IDS_CHANGED,
            conn.proto.next_opaque(),
        )
        .with_ext("consumerGroup", group);
        notify.flag = command_flag::ONEWAY;
        conn.push(reply(&notify));
    }
}

impl Protocol for Remoting {
    type Frame = InCommand;
    const NAME: &'static str = "remoting";

    async fn read_frame(
        conn: &Conn<Self>,
        reader: &mut Reader,
        arrived: &dyn Fn() -> usize,
    ) -> Result<Option<InCommand>, FrameFailure> {
        read_command(
            conn,
            reader,
            arrived,
            conn.proto.shard.directory.client_idle,
        )
        .await
    }

    async fn handle(conn: &Rc<Conn<Self>>, frame: InCommand) -> (Handled, &'static str) {
        let InCommand { command, held } = frame;
        if command.is_response() {
            return (Handled::Nothing, "response");
        }
        let what = shardmq_protocol::remoting::codes::request::name(command.code);
        let oneway = command.is_oneway();
        // A pull's body is built in memory of its own: its reply budget is taken first
        // (`outbox::reserve`), so what waits for a slow reader stays budgeted.
        let reserved = if matches!(
            command.code,
            request::PULL_MESSAGE | request::LITE_PULL_MESSAGE
        ) {
            let bytes = (PULL_BODY_BYTES_MAX as u64) + PULL_REPLY_HEAD_BYTES;
            match conn.outbox.reserve(bytes).await {
                Ok(reserved) => Some(reserved),
                Err(_) => return (Handled::Nothing, what),
            }
        } else {
            None
        };
        let answer = dispatch(conn, command).await;
        drop(held);
        let handled = match answer {
            _ if oneway => Handled::Nothing,
            Answer::Now(response) => match reserved {
                Some(reserved) => Handled::Reserved(reply(&response), reserved),
                None => Handled::Reply(reply(&response)),
            },
            Answer::AfterSync(response, end) => {
                let mut out = reply(&response);
                out.gate = Some(SyncGate {
                    end,
                    correlation_id: u64::from(response.opaque as u32),
                    on_failure: sync_failure,
                });
                Handled::Reply(out)
            }
            Answer::Later(later) => Handled::Later(later),
        };
        (handled, what)
    }

    fn closed(conn: &Conn<Self>) {
        let clients = std::mem::take(&mut *conn.proto.clients.borrow_mut());
        for (group, client) in &clients {
            conn.proto
                .shard
                .forget_member(group, client, conn.proto.peer_addr);
        }
        conn.ctx.core.connection_closed(conn.proto.notify, clients);
    }
}

/// The response that replaces a send's success when the fdatasync it waited for failed.
fn sync_failure(opaque: u64, err: shardmq_shards::StorageError) -> Vec<u8> {
    let request = RemotingCommand {
        opaque: opaque as u32 as i32,
        ..RemotingCommand::default()
    };
    let response = RemotingCommand::response_to(
        &request,
        shardmq_protocol::remoting::codes::response::SERVICE_NOT_AVAILABLE,
    )
    .with_remark(format!("the message was not made durable: {err}"));
    reply(&response).head
}

/// Serves one remoting connection accepted by this shard's listener.
pub async fn serve(ctx: Rc<ShardContext>, shard: Rc<RemotingShard>, stream: TcpStream) {
    let peer_addr = stream
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let make = move |ctx: &Rc<ShardContext>, weak: Weak<Conn<Remoting>>| {
        let notify = ctx
            .core
            .register_notifier(Rc::new(Notifier { connection: weak }));
        Remoting {
            shard,
            peer_addr,
            notify,
            clients: RefCell::new(BTreeSet::new()),
            next_opaque: Cell::new(1),
            acl_refusals: Cell::new(0),
        }
    };
    // RocketMQ's permissive TLS: a client that opens with a TLS handshake gets TLS.
    let tls = ctx.tls.clone();
    let stream = match tls::accept_permissive(tls.as_ref(), stream, HANDSHAKE_TIMEOUT).await {
        Ok(stream) => stream,
        Err(err) => {
            tracing::warn!(peer = %peer_addr, error = %err, "remoting connection: no TLS handshake");
            return;
        }
    };
    connection::serve(ctx, stream, make, |_| None::<Reply>).await;
}
