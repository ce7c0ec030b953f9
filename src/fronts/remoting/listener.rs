//! A shard's remoting listeners: it accepts on its own port (and its VIP port) and serves every
//! connection itself, with no hand-off: each shard is a broker of its own to RocketMQ clients.

use std::rc::Rc;

use glommio::net::TcpListener;

use super::connection;
use super::state::RemotingShard;
use crate::limits::CONNECTIONS_PER_SHARD_MAX;
use crate::server::context::ShardContext;
use crate::server::listener::accept_until_shutdown;

/// Accepts on `listener` until shutdown.
pub async fn accept_loop(ctx: Rc<ShardContext>, shard: Rc<RemotingShard>, listener: TcpListener) {
    let serving = ctx.clone();
    accept_until_shutdown(ctx, listener, "remoting", move |stream| {
        if serving.open_connections() >= CONNECTIONS_PER_SHARD_MAX {
            tracing::warn!(
                shard = serving.core.shard_id,
                "remoting connection refused: too many connections"
            );
            return;
        }
        glommio::spawn_local(connection::serve(serving.clone(), shard.clone(), stream)).detach();
    })
    .await;
}
