//! TLS (rustls, ring) for the broker's listeners, as an option (`--tls-cert`, `--tls-key`).
//!
//! Where it applies:
//! - **Native**: `--tls-listen HOST:PORT` opens a TLS listener on every shard (shard k on
//!   PORT + k; port 0: each picks a free port). A TLS session cannot move between cores the way
//!   a plain socket is handed off, so each shard serves the TLS connections it accepts itself,
//!   and the `HelloReply` lists every shard's TLS address (`tls_addresses`) for the client to
//!   open its connection to shard k at shard k's listener.
//! - **Remoting** and **HTTP**: on their usual ports, *permissively* (RocketMQ's
//!   `tls.server.mode = permissive`): a connection whose first byte is a TLS record's (0x16,
//!   handshake) is TLS, anything else plaintext. Neither protocol can start with that byte: a
//!   remoting frame starts with the top byte of a length of at most 16 MiB (0x00 or 0x01), an
//!   HTTP request with a method's letter.
//!
//! Limits and failures: the handshake must finish within the handshake timeout; a failed
//! handshake is logged (with the peer, never key material) and closes the connection. A cert or
//! key that cannot be read or parsed stops the start with the file and the reason.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncWrite};
use futures_rustls::TlsAcceptor;
use glommio::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The first byte of a TLS handshake record.
pub const TLS_HANDSHAKE_BYTE: u8 = 0x16;

/// The server side's certificate and key, ready for every listener.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "--tls-cert {}: no certificate in it",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| format!("--tls-cert / --tls-key: {e}"))?;
    Ok(Arc::new(config))
}

/// A client connection, plain or TLS. Reads and writes are the plaintext either way.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<futures_rustls::server::TlsStream<TcpStream>>),
}

impl Stream {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        self.tcp().as_raw_fd()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_close(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}

/// Runs the server handshake on `stream` within `timeout`.
pub async fn accept(
    config: &Arc<rustls::ServerConfig>,
    stream: TcpStream,
    timeout: Duration,
) -> io::Result<Stream> {
    let acceptor = TlsAcceptor::from(config.clone());
    let handshake = async {
        acceptor
            .accept(stream)
            .await
            .map(|s| Stream::Tls(Box::new(s)))
    };
    let expired = async {
        glommio::timer::sleep(timeout).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no TLS handshake in time",
        ))
    };
    futures_lite::future::or(handshake, expired).await
}

/// Permissive: TLS when the connection's first byte is a TLS handshake record's, plaintext
/// otherwise (waits for the first byte, at most `timeout`). `None`: TLS is off.
pub async fn accept_permissive(
    config: Option<&Arc<rustls::ServerConfig>>,
    stream: TcpStream,
    timeout: Duration,
) -> io::Result<Stream> {
    let Some(config) = config else {
        return Ok(Stream::Plain(stream));
    };
    let mut first = [0u8; 1];
    let peeked = futures_lite::future::or(
        async { stream.peek(&mut first).await.map_err(io::Error::from) },
        async {
            glommio::timer::sleep(timeout).await;
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "nothing sent in time",
            ))
        },
    )
    .await?;
    if peeked == 1 && first[0] == TLS_HANDSHAKE_BYTE {
        accept(config, stream, timeout).await
    } else {
        Ok(Stream::Plain(stream))
    }
}
