//! The gRPC port's connections: accepted here, handed to tonic as they come ready.
//!
//! - Plain HTTP/2 and TLS on the same port, as the remoting and HTTP ports: a connection whose
//!   first byte opens a TLS handshake gets TLS (ALPN `h2`, which grpc-js requires), any other
//!   is HTTP/2 in the clear. Without `--tls-cert` every connection is plain.
//! - A connection must show its first byte and finish its TLS handshake within
//!   [`HANDSHAKE_TIMEOUT`], or it is closed (a client that connects and sends nothing holds
//!   nothing for long).
//! - At most [`CONNECTIONS_MAX`] connections at once; one over it is closed at accept. A slot
//!   is freed when tonic drops the connection, whatever ended it.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Connections the gRPC port holds at most.
pub const CONNECTIONS_MAX: usize = 4096;
/// How long a new connection has to send its first byte and finish a TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const TLS_HANDSHAKE_BYTE: u8 = crate::server::tls::TLS_HANDSHAKE_BYTE;

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// One accepted connection, holding its slot until dropped.
pub struct Connection {
    io: Io,
    info: TcpConnectInfo,
    _slot: Slot,
}

struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Connected for Connection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The TLS settings of the gRPC port: the broker's certificate, ALPN `h2`.
pub fn tls_acceptor(config: &rustls::ServerConfig) -> tokio_rustls::TlsAcceptor {
    let mut config = config.clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// Accepts until `ready` is closed (tonic stopped), sending each connection once it is ready.
pub async fn accept(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    ready: mpsc::Sender<io::Result<Connection>>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "gRPC accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = ready.closed() => return,
        };
        if open.fetch_add(1, Ordering::SeqCst) >= CONNECTIONS_MAX {
            open.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(%peer, max = CONNECTIONS_MAX, "gRPC connection refused: too many open");
            continue;
        }
        let slot = Slot(open.clone());
        let (tls, ready) = (tls.clone(), ready.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(stream, peer, tls)).await {
                Ok(Ok((io, info))) => {
                    let _ = ready
                        .send(Ok(Connection {
                            io,
                            info,
                            _slot: slot,
                        }))
                        .await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "gRPC handshake failed"),
                Err(_) => tracing::debug!(%peer, "gRPC connection sent nothing in time; closed"),
            }
        });
    }
}

async fn handshake(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> io::Result<(Io, TcpConnectInfo)> {
    let _ = stream.set_nodelay(true);
    let info = TcpConnectInfo {
        local_addr: stream.local_addr().ok(),
        remote_addr: Some(peer),
    };
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "closed before a byte",
        ));
    }
    match tls {
        Some(acceptor) if first[0] == TLS_HANDSHAKE_BYTE => {
            let tls = acceptor.accept(stream).await?;
            Ok((Io::Tls(Box::new(tls)), info))
        }
        _ => Ok((Io::Plain(stream), info)),
    }
}
