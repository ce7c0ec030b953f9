//! Binding the broker's listeners so that a taken address is refused at start.
//!
//! glommio's `TcpListener::bind` sets `SO_REUSEPORT` (it is meant for one listener per executor
//! on the same port), which lets a second broker bind the same address: the kernel then splits
//! new connections between the two processes and producers see no error. shardmq accepts on one
//! listener per protocol, so it binds without `SO_REUSEPORT` (std's bind: `SO_REUSEADDR` only,
//! which permits a restart over TIME_WAIT connections but never two listeners) and hands the
//! bound socket to glommio.

use std::net::ToSocketAddrs;
use std::os::fd::{FromRawFd, IntoRawFd};

/// Pending connections the kernel queues before `accept`.
const LISTEN_BACKLOG: i32 = 1024;

/// Binds `addr` (HOST:PORT, port 0 picks a free one) for this executor. Fails with
/// `AddrInUse` when any socket already listens there, ours or another process's.
pub fn bind_exclusive(addr: &str) -> std::io::Result<glommio::net::TcpListener> {
    let resolved: Vec<_> = addr.to_socket_addrs()?.collect();
    let listener = std::net::TcpListener::bind(&resolved[..])?;
    let fd = listener.into_raw_fd();
    // SAFETY: `fd` is the listening socket we own; listen() again only resizes its backlog.
    if unsafe { libc::listen(fd, LISTEN_BACKLOG) } != 0 {
        let err = std::io::Error::last_os_error();
        // SAFETY: closing the descriptor we own and have not handed to anyone.
        unsafe { libc::close(fd) };
        return Err(err);
    }
    // SAFETY: a bound, listening TCP socket whose ownership passes to glommio here.
    Ok(unsafe { glommio::net::TcpListener::from_raw_fd(fd) })
}

/// Accepts on `listener` until the shard shuts down, handing each connection to `serve` (which
/// spawns its task, and enforces the connection limit its protocol's way).
pub async fn accept_until_shutdown(
    ctx: std::rc::Rc<crate::server::context::ShardContext>,
    listener: glommio::net::TcpListener,
    what: &'static str,
    serve: impl Fn(glommio::net::TcpStream),
) {
    loop {
        let shutdown = ctx.core.shutdown.listen();
        if ctx.core.is_shutting_down() {
            return;
        }
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            shutdown.await;
            None
        })
        .await;
        match accepted {
            None => return,
            Some(Ok(stream)) => {
                if ctx.open_connections() >= crate::limits::CONNECTIONS_PER_SHARD_MAX {
                    tracing::warn!(
                        shard = ctx.core.shard_id,
                        listener = what,
                        "connection refused: too many connections"
                    );
                    continue;
                }
                serve(stream);
            }
            Some(Err(err)) => {
                tracing::warn!(shard = ctx.core.shard_id, listener = what, error = %err, "accept failed");
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_listener_on_a_taken_address_is_refused() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let first = bind_exclusive("127.0.0.1:0").unwrap();
                let addr = first.local_addr().unwrap().to_string();
                let Err(err) = bind_exclusive(&addr) else {
                    panic!("the address is taken")
                };
                assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
                // Even a SO_REUSEPORT listener (what glommio's bind makes) cannot share it.
                assert!(glommio::net::TcpListener::bind(addr.as_str()).is_err());
                assert!(bind_exclusive("not an address").is_err());
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
