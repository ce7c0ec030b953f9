//! The native protocol over TLS (`--tls-listen`, `server::tls`): every shard accepts on a TLS
//! listener of its own and serves what it accepts itself, since a TLS session cannot be handed
//! to another core the way a plain socket is. A client learns each shard's TLS address from the
//! `HelloReply` (`tls_addresses`) and opens its connection to shard k at shard k's listener,
//! so no request on a TLS connection crosses a core either.
//!
//! The handshake is the plain listener's ([`router::read_hello`]: one Hello within the
//! handshake timeout, its account proved with ACL on), after the TLS handshake; a Hello that
//! names another shard is refused with that shard's TLS address in the message.

use std::rc::Rc;

use glommio::net::{TcpListener, TcpStream};

use super::connection;
use super::error::NativeError;
use super::router::{self, Greeted};
use crate::limits::HANDSHAKE_TIMEOUT;
use crate::server::context::ShardContext;
use crate::server::tls;

/// Accepts TLS connections on this shard until shutdown.
pub async fn accept_loop(ctx: Rc<ShardContext>, listener: TcpListener) {
    let serving = ctx.clone();
    crate::server::listener::accept_until_shutdown(ctx, listener, "native-tls", move |stream| {
        glommio::spawn_local(serve(serving.clone(), stream)).detach();
    })
    .await;
}

async fn serve(ctx: Rc<ShardContext>, stream: TcpStream) {
    let Some(config) = ctx.tls.clone() else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let mut stream = match tls::accept(&config, stream, HANDSHAKE_TIMEOUT).await {
        Ok(stream) => stream,
        Err(err) => {
            tracing::warn!(%peer, error = %err, "TLS handshake failed");
            return;
        }
    };
    let Some(Greeted {
        correlation_id,
        hello,
        account,
    }) = router::read_hello(&ctx, &mut stream).await
    else {
        return;
    };
    let here = ctx.core.shard_id;
    if let Some(wanted) = hello.wanted_shard.filter(|&w| w != here) {
        let addresses = ctx.tls_addresses();
        let there = addresses.get(wanted as usize).cloned().unwrap_or_default();
        let err = NativeError::InvalidArgument(format!(
            "this TLS listener serves shard {here}; shard {wanted} is at {there:?}"
        ));
        return router::reject(stream, correlation_id, err).await;
    }
    if let Some(err) = router::refuse_at_capacity(&ctx) {
        return router::reject(stream, correlation_id, err).await;
    }
    connection::serve(ctx, stream, Some(correlation_id), account).await;
}
