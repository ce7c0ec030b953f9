//! The TCP socket of one connection, shared by its reader task and its writers.
//!
//! glommio's `TcpStream` keeps separate readiness sources for receive and send, so one task may
//! sit in a read while another writes. [`Socket`] exposes `read_exact` / `write_all` taking
//! `&self`: the `RefCell` around the stream is borrowed only inside a single `poll`, never across
//! an `.await`, so the two directions never conflict. Callers serialize writers themselves (the
//! connection's write lock); there is exactly one reader (the connection's reader task).
//!
//! With TLS (`ClientConfig::tls`) the stream is rustls' over the same socket; the reader and the
//! writer still take turns inside single polls, and every write ends with a flush so nothing
//! waits in rustls' buffer.
//!
//! Runs on the glommio executor thread that created it; `Rc`-shared, never `Send`. Public so
//! that the bench's peer drivers (RocketMQ remoting, Redis, NATS) share one socket discipline.

use std::cell::RefCell;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::io::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::future::poll_fn;
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::{Preallocated, TcpStream};

/// Receive buffer size: frame headers and small replies are read from it; payload reads at
/// least this large go straight into the caller's buffer.
const RX_BUFFER_BYTES: usize = 64 * 1024;

pub struct Socket {
    stream: RefCell<Stream>,
    /// The stream's descriptor, kept so `shutdown` needs no borrow of the stream.
    fd: RawFd,
    peer: SocketAddr,
}

/// The connection's stream: plain (read through glommio's receive buffer) or TLS.
enum Stream {
    Plain(TcpStream<Preallocated>),
    Tls(Box<futures_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
}

impl Socket {
    /// [`Socket::connect`], then, with `tls`, the TLS handshake (within `timeout`) with the
    /// server named in `tls` (or `addr`'s host).
    pub async fn connect_with(
        addr: &str,
        timeout: Duration,
        tls: Option<&crate::config::TlsConfig>,
    ) -> io::Result<Socket> {
        let Some(tls) = tls else {
            return Socket::connect(addr, timeout).await;
        };
        let (stream, fd, peer) = Socket::connect_tcp(addr, timeout).await?;
        let name = tls.server_name_for(addr)?;
        let connector = futures_rustls::TlsConnector::from(tls.config.clone());
        let handshake = async { connector.connect(name, stream).await };
        let expired = async {
            glommio::timer::sleep(timeout).await;
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no TLS handshake in time",
            ))
        };
        let stream = futures_lite::future::or(handshake, expired).await?;
        Ok(Socket {
            fd,
            stream: RefCell::new(Stream::Tls(Box::new(stream))),
            peer,
        })
    }

    /// Resolves `addr`, connects to the first address that accepts within `timeout`, and sets
    /// `TCP_NODELAY`.
    pub async fn connect(addr: &str, timeout: Duration) -> io::Result<Socket> {
        let (stream, fd, peer) = Socket::connect_tcp(addr, timeout).await?;
        Ok(Socket {
            fd,
            stream: RefCell::new(Stream::Plain(
                stream.buffered_with(Preallocated::new(RX_BUFFER_BYTES)),
            )),
            peer,
        })
    }

    async fn connect_tcp(
        addr: &str,
        timeout: Duration,
    ) -> io::Result<(TcpStream, RawFd, SocketAddr)> {
        let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{addr} resolves to no address"),
            ));
        }
        let mut last_error = None;
        for peer in addrs {
            match TcpStream::connect_timeout(peer, timeout.max(Duration::from_millis(1))).await {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    let fd = stream.as_raw_fd();
                    return Ok((stream, fd, peer));
                }
                Err(e) => last_error = Some(io::Error::from(e)),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("connect failed")))
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Fills `buf` completely; a clean end of stream before that is `UnexpectedEof`.
    pub async fn read_exact(&self, buf: &mut [u8]) -> io::Result<()> {
        let mut filled = 0;
        while filled < buf.len() {
            let n =
                poll_fn(|cx| self.stream.borrow_mut().poll_read(cx, &mut buf[filled..])).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed by the broker",
                ));
            }
            filled += n;
        }
        Ok(())
    }

    /// Reads what is available (at least one byte, waiting if none); 0 means end of stream.
    pub async fn read_some(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.stream.borrow_mut().poll_read(cx, buf)).await
    }

    pub async fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        let mut written = 0;
        while written < buf.len() {
            let n = poll_fn(|cx| self.stream.borrow_mut().poll_write(cx, &buf[written..])).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "socket accepted no bytes",
                ));
            }
            written += n;
        }
        // TLS keeps what it could not send yet; plain sockets have nothing to flush.
        poll_fn(|cx| self.stream.borrow_mut().poll_flush(cx)).await
    }

    /// Shuts both directions down at once (synchronously, so it works from `Drop`): the reader
    /// task sees end of stream and the broker sees the connection go away.
    pub fn shutdown(&self) {
        // SAFETY: `fd` is the socket owned by `self.stream`, open for as long as `self` lives;
        // shutdown(2) does not close or invalidate it.
        unsafe {
            libc::shutdown(self.fd, libc::SHUT_RDWR);
        }
    }
}
