//! Reading one HTTP request head, bounded in size and time, parsed by `httparse`.

use std::io::Read;

use thiserror::Error;

use super::REQUEST_HEAD_BYTES_MAX;

/// What a handler needs of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query's `key=value` pairs, percent-decoded.
    pub query: Vec<(String, String)>,
    /// The `Authorization` header, if any (never logged: it may carry a secret).
    pub authorization: Option<String>,
}

impl Request {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Error)]
pub enum RequestError {
    #[error("the request head is over {REQUEST_HEAD_BYTES_MAX} bytes")]
    TooLarge,
    #[error("no complete request head in time")]
    Timeout,
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("connection closed before a request")]
    Closed,
}

impl RequestError {
    pub fn status(&self) -> u16 {
        match self {
            RequestError::TooLarge => 431,
            RequestError::Timeout => 408,
            RequestError::Malformed(_) | RequestError::Closed => 400,
        }
    }
}

/// Reads until the head is complete (a body, which GET does not have, is ignored).
pub fn read(stream: &mut impl Read) -> Result<Request, RequestError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Err(RequestError::Closed),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(RequestError::Timeout)
            }
            Err(e) => return Err(RequestError::Malformed(e.to_string())),
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(request) = parse(&buf)? {
            return Ok(request);
        }
        if buf.len() >= REQUEST_HEAD_BYTES_MAX {
            return Err(RequestError::TooLarge);
        }
    }
}

/// The request, once `bytes` hold a complete head.
pub fn parse(bytes: &[u8]) -> Result<Option<Request>, RequestError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(bytes) {
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(_)) => {
            let method = req.method.unwrap_or_default().to_string();
            let target = req.path.unwrap_or("/");
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            let authorization = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("authorization"))
                .map(|h| String::from_utf8_lossy(h.value).into_owned());
            Ok(Some(Request {
                authorization,
                method,
                path: percent_decode(path),
                query: query
                    .split('&')
                    .filter(|p| !p.is_empty())
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        (percent_decode(k), percent_decode(v))
                    })
                    .collect(),
            }))
        }
        Err(e) => Err(RequestError::Malformed(e.to_string())),
    }
}

/// `%XX` and `+` decoded; invalid escapes are kept as they are.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' => {
                let digit = |at: usize| bytes.get(at).and_then(|b| hex(*b));
                match (digit(i + 1), digit(i + 2)) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse_partial_heads_wait_and_garbage_is_refused() {
        let r = parse(b"GET /api/messages?topic=a%20b&queue=3&x HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("GET", "/api/messages")
        );
        assert_eq!(r.param("topic"), Some("a b"));
        assert_eq!(r.param("queue"), Some("3"));
        assert_eq!(r.param("x"), Some(""));
        assert!(parse(b"GET /metrics HTTP/1.1\r\nHost:").unwrap().is_none());
        assert!(parse(b"\x00\x01garbage\r\n\r\n").is_err());
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz"), "%zz");
        let mut endless = std::io::repeat(b'a');
        assert!(matches!(
            read(&mut endless),
            Err(RequestError::TooLarge) | Err(RequestError::Malformed(_))
        ));
    }
}
