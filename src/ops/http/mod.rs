//! The HTTP listener (`--http-listen`): Prometheus text at `/metrics`, the dashboard at `/` with
//! its JSON under `/api/` (`api`), on threads of its own.
//!
//! One accept thread, and a thread per connection up to [`CONNECTIONS_MAX`] (more are answered
//! 503 at once): a scraper or a browser never runs on a shard's executor. Each request asks the
//! shards over their query channels (`ops::query`) and waits at most [`SHARD_ANSWER_TIMEOUT`]
//! for each.
//!
//! Limits and bad input: a request head is at most [`REQUEST_HEAD_BYTES_MAX`] and must arrive
//! within [`REQUEST_TIMEOUT`]; anything else, or a head `httparse` refuses, gets a 4xx and the
//! connection is closed. Only GET and HEAD are served; every response closes its connection.
//! With `--acl`, pages need Basic authentication (`access`); with `--tls-cert`, a connection
//! that opens with a TLS handshake is served over TLS (`server::tls`).

mod access;
mod api;
mod request;
pub mod routes;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::ops::query::ShardQuery;

pub const CONNECTIONS_MAX: usize = 32;
pub const REQUEST_HEAD_BYTES_MAX: usize = 8 * 1024;
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
pub const SHARD_ANSWER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long, and how much, a closing connection's unread input is drained (see `linger`).
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES_MAX: usize = 64 * 1024;
/// How often the accept thread looks at the shutdown flag.
const SHUTDOWN_POLL: Duration = Duration::from_millis(50);

/// A response: status, content type, body.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into().into_bytes(),
        }
    }
}

/// What every request handler can reach.
pub struct Shared {
    pub shards: Vec<flume::Sender<ShardQuery>>,
    open: AtomicUsize,
    /// `--acl`: who may read which page (`access`); `None`: every page is open.
    acl: Option<Arc<crate::acl::Acl>>,
    /// `--tls-cert`: a connection that opens with a TLS handshake gets TLS (`server::tls`).
    tls: Option<Arc<rustls::ServerConfig>>,
}

/// Binds the listener (refusing an address in use) without serving yet.
pub fn bind(listen: &str) -> Result<TcpListener, String> {
    let listener = TcpListener::bind(listen)
        .map_err(|e| format!("cannot listen on {listen} (--http-listen): {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("--http-listen {listen}: {e}"))?;
    Ok(listener)
}

/// Serves `listener` until `shutdown` is set.
pub fn start(
    listener: TcpListener,
    shards: Vec<flume::Sender<ShardQuery>>,
    shutdown: Arc<AtomicBool>,
    acl: Option<Arc<crate::acl::Acl>>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<JoinHandle<()>> {
    let shared = Arc::new(Shared {
        shards,
        open: AtomicUsize::new(0),
        acl,
        tls,
    });
    std::thread::Builder::new()
        .name("http".into())
        .spawn(move || accept_loop(&listener, &shared, &shutdown))
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>, shutdown: &AtomicBool) {
    while !shutdown.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, peer)) => serve_in_thread(stream, peer, shared),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(SHUTDOWN_POLL)
            }
            Err(e) => {
                tracing::warn!(error = %e, "http accept failed");
                std::thread::sleep(SHUTDOWN_POLL);
            }
        }
    }
}

fn serve_in_thread(mut stream: TcpStream, peer: SocketAddr, shared: &Arc<Shared>) {
    if shared.open.fetch_add(1, Ordering::SeqCst) >= CONNECTIONS_MAX {
        shared.open.fetch_sub(1, Ordering::SeqCst);
        let _ = stream.set_nonblocking(false);
        let _ = write_response(
            &mut stream,
            &Response::text(503, "too many connections\n"),
            false,
        );
        return;
    }
    let shared = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("http-conn".into())
        .spawn(move || {
            serve_connection(stream, peer, &shared);
            shared.open.fetch_sub(1, Ordering::SeqCst);
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start an http connection thread");
    }
}

fn serve_connection(mut stream: TcpStream, peer: SocketAddr, shared: &Shared) {
    let setup = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(REQUEST_TIMEOUT)))
        .and_then(|()| stream.set_write_timeout(Some(REQUEST_TIMEOUT)));
    if setup.is_err() {
        return;
    }
    if let Some(config) = shared.tls.as_ref().filter(|_| opens_with_tls(&stream)) {
        let Ok(session) = rustls::ServerConnection::new(config.clone()) else {
            return;
        };
        let mut tls = rustls::StreamOwned::new(session, stream);
        let (response, head_only) = answer(&mut tls, peer, shared);
        let _ = write_response(&mut tls, &response, head_only);
        tls.conn.send_close_notify();
        let _ = tls.flush();
        return linger(&mut tls.sock);
    }
    let (response, head_only) = answer(&mut stream, peer, shared);
    let _ = write_response(&mut stream, &response, head_only);
    linger(&mut stream);
}

/// Permissive TLS (`server::tls`): the client's first byte is a TLS handshake record's.
fn opens_with_tls(stream: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(stream.peek(&mut first), Ok(1)) && first[0] == crate::server::tls::TLS_HANDSHAKE_BYTE
}

/// Reads one request from `input` and routes it: the response, and whether only its head goes.
fn answer(input: &mut impl std::io::Read, peer: SocketAddr, shared: &Shared) -> (Response, bool) {
    match request::read(input) {
        Ok(req) if req.method == "GET" || req.method == "HEAD" => {
            let refused = shared.acl.as_ref().and_then(|acl| access::check(acl, &req));
            let response = refused.unwrap_or_else(|| routes::route(shared, &req));
            (response, req.method == "HEAD")
        }
        Ok(_) => (Response::text(405, "only GET and HEAD are served\n"), false),
        Err(err) => {
            tracing::debug!(%peer, error = %err, "bad http request");
            (Response::text(err.status(), format!("{err}\n")), false)
        }
    }
}

/// Closes our side, then reads (and drops) what the client still sends, a bounded amount for
/// a bounded time: closing with unread input would reset the connection and could destroy
/// the response before the client read it.
fn linger(stream: &mut TcpStream) {
    use std::io::Read;
    if stream.shutdown(std::net::Shutdown::Write).is_err() {
        return;
    }
    let _ = stream.set_read_timeout(Some(LINGER));
    let mut sink = [0u8; 4096];
    let mut drained = 0usize;
    while drained < LINGER_BYTES_MAX {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => return,
            Ok(n) => drained += n,
        }
    }
}

fn write_response(stream: &mut impl Write, r: &Response, head_only: bool) -> std::io::Result<()> {
    let reason = match r.status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    };
    let challenge = if r.status == 401 {
        "WWW-Authenticate: Basic realm=\"shardmq\", charset=\"UTF-8\"\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\n{challenge}Content-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n",
        r.status,
        r.content_type,
        r.body.len()
    );
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(&r.body)?;
    }
    stream.flush()
}
