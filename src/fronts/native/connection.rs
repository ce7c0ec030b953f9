//! The native protocol's part of a connection (`server::connection` runs the loop): frames read
//! with the native header, requests decoded and dispatched, group changes pushed as
//! `GroupChanged` frames, members leaving their groups when the connection closes.
//!
//! Bad input: a frame whose header is invalid (oversize length, unknown kind) gets a BadFrame
//! error reply and the connection is closed, since the stream can no longer be trusted; a
//! well-framed request with bad contents (garbage metadata, a batch with a wrong CRC) gets an
//! error reply and the connection goes on. Either way the reason is logged and nothing else on
//! the shard is affected.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use shardmq_protocol::envelope;
use shardmq_protocol::frame::FLAG_ONEWAY;
use shardmq_protocol::limits::FRAME_PAYLOAD_BYTES_MAX;
use shardmq_protocol::messages::{GroupChanged, HelloReply};
use shardmq_protocol::FrameKind;

use super::access;
use super::dispatch::{self, dispatch, finish_pull, Dispatched};
use super::error::NativeError;
use super::frame_io::{native_reply, read_frame, FrameError, InFrame};
use super::groups::Session;
use super::request::Request;
use crate::acl::Account;
use crate::core::membership::GroupNotifier;
use crate::limits::{PULL_BYTES_MAX, PULL_REPLY_HEAD_BYTES};
use crate::server::connection::{self, Conn, FrameFailure, Handled, Protocol, Reader};
use crate::server::context::ShardContext;
use crate::server::outbox;
use crate::server::tls::Stream;

/// The native protocol's state of one connection.
pub struct Native {
    /// Where group changes reach this connection, and the members that joined through it.
    session: Session,
    /// The ACL account the Hello proved; `None` when ACL is off.
    account: Option<Arc<Account>>,
}

/// Tells a connection's members that their group changed: a `GroupChanged` frame, unasked.
struct Notifier {
    connection: Weak<Conn<Native>>,
}

impl GroupNotifier for Notifier {
    fn group_changed(&self, group: &str, generation: u64) {
        let Some(conn) = self.connection.upgrade() else {
            return;
        };
        let changed = GroupChanged {
            group: group.to_string(),
            generation,
        };
        let Ok(prefix) = envelope::encode(&changed) else {
            return;
        };
        if let Ok(frame) = native_reply(FrameKind::GroupChanged, 0, prefix, Vec::new()) {
            conn.push(frame);
        }
    }
}

impl Protocol for Native {
    type Frame = InFrame;
    const NAME: &'static str = "native";

    async fn read_frame(
        conn: &Conn<Self>,
        reader: &mut Reader,
        arrived: &dyn Fn() -> usize,
    ) -> Result<Option<InFrame>, FrameFailure> {
        let read = read_frame(
            reader,
            FRAME_PAYLOAD_BYTES_MAX,
            &conn.ctx.request_budget,
            Some(&conn.progress),
            arrived,
        )
        .await;
        match read {
            Ok(frame) => Ok(frame),
            Err(FrameError::Protocol(err)) => Err(FrameFailure::Fatal {
                reason: err.to_string(),
                reply: Some(dispatch::error(0, &NativeError::BadFrame(err))),
            }),
            Err(err) => Err(FrameFailure::Ended(err.to_string())),
        }
    }

    async fn handle(conn: &Rc<Conn<Self>>, frame: InFrame) -> (Handled, &'static str) {
        let kind = frame.header.kind;
        (handle(conn, frame).await, kind.name())
    }

    fn closed(conn: &Conn<Self>) {
        leave_groups(conn);
    }
}

/// Serves a native connection; `hello` is the correlation id of the Hello the router already
/// read, to be answered here.
pub async fn serve(
    ctx: Rc<ShardContext>,
    stream: Stream,
    hello: Option<u64>,
    account: Option<Arc<Account>>,
) {
    let make = |ctx: &Rc<ShardContext>, weak: Weak<Conn<Native>>| {
        let notify = ctx
            .core
            .register_notifier(Rc::new(Notifier { connection: weak }));
        Native {
            session: Session {
                notify,
                joined: RefCell::new(BTreeSet::new()),
            },
            account,
        }
    };
    let first = |conn: &Conn<Native>| hello.map(|id| hello_reply(&conn.ctx, id));
    connection::serve(ctx, stream, make, first).await;
}

/// Lets the connection's members leave their groups (only those still registered through it).
fn leave_groups(conn: &Conn<Native>) {
    let joined = std::mem::take(&mut *conn.proto.session.joined.borrow_mut());
    conn.ctx
        .core
        .connection_closed(conn.proto.session.notify, joined);
}

/// The HelloReply that tells the client which shard serves it.
fn hello_reply(ctx: &ShardContext, correlation_id: u64) -> outbox::Reply {
    let reply = HelloReply {
        shard_id: ctx.core.shard_id,
        shard_count: ctx.core.shard_count,
        broker_version: env!("CARGO_PKG_VERSION").into(),
        tls_addresses: ctx.tls_addresses(),
    };
    envelope::encode(&reply)
        .map_err(NativeError::ReplyTooLarge)
        .and_then(|prefix| {
            native_reply(FrameKind::HelloReply, correlation_id, prefix, Vec::new())
                .map_err(NativeError::ReplyTooLarge)
        })
        .unwrap_or_else(|err| dispatch::error(correlation_id, &err))
}

/// Runs one request. The frame's request budget is held until the request is dispatched.
async fn handle(conn: &Rc<Conn<Native>>, frame: InFrame) -> Handled {
    let ctx = &conn.ctx;
    let InFrame {
        header,
        payload,
        held: _held,
    } = frame;
    let (kind, id) = (header.kind, header.correlation_id);
    let request = Request::decode(kind, payload).and_then(|request| match &conn.proto.account {
        Some(account) => access::authorize(account, &request)
            .map(|()| request)
            .map_err(NativeError::AccessDenied),
        None => Ok(request),
    });
    let request = match request {
        Ok(request) => request,
        Err(err) => {
            log_failure(conn, kind, &err);
            return Handled::Reply(dispatch::error(id, &err));
        }
    };
    // A pull reads its data into memory of its own when it comes from disk: its reply budget
    // is taken first (`outbox::reserve`), so what waits for a slow reader stays budgeted.
    let reserved = match &request {
        Request::Pull(pull) => {
            let bytes = u64::from(pull.max_bytes.min(PULL_BYTES_MAX)) + PULL_REPLY_HEAD_BYTES;
            match conn.outbox.reserve(bytes).await {
                Ok(reserved) => Some(reserved),
                Err(_) => return Handled::Nothing,
            }
        }
        _ => None,
    };
    // With too many polls parked on this connection already, this one is answered now.
    let may_park = conn.may_park();
    let oneway = header.flags & FLAG_ONEWAY != 0;
    match dispatch(ctx, &conn.proto.session, kind, id, request, may_park).await {
        // A oneway request gets no reply, for success or failure (RocketMQ's oneway).
        Dispatched::Now(_) if oneway => Handled::Nothing,
        Dispatched::Now(reply) => match reserved {
            Some(reserved) => Handled::Reserved(reply, reserved),
            None => Handled::Reply(reply),
        },
        // A parked poll gives its reservation back: it answers with what is appended later,
        // which the hot tail holds and the reply shares.
        Dispatched::Later(later) => {
            drop(reserved);
            let ctx = ctx.clone();
            Handled::Later(Box::pin(async move { finish_pull(&ctx, later).await }))
        }
    }
}

fn log_failure(conn: &Conn<Native>, kind: FrameKind, err: &NativeError) {
    let shard = conn.ctx.core.shard_id;
    if err.is_rejection() {
        tracing::warn!(shard, peer = %conn.peer, ?kind, reason = %err, "request rejected");
    } else {
        tracing::debug!(shard, peer = %conn.peer, ?kind, reason = %err, "request failed");
    }
}
