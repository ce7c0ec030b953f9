//! The NATS client protocol, as much as the bench needs: `CONNECT`, `PING`/`PONG`, `SUB`,
//! `PUB` out; `INFO`, `+OK`, `-ERR`, `PING`, `PONG`, `MSG` and `HMSG` in.
//!
//! Incoming operations are parsed from a byte buffer: [`parse`] returns `Ok(None)` while the
//! buffer holds only part of one. Limits: a control line is at most 64 KiB and a message payload
//! at most 64 MiB (the server's own max_payload is 1 MiB by default); anything else malformed is
//! a [`ProtoError`].

/// One operation from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Info,
    Ok,
    Err(String),
    Ping,
    Pong,
    /// `MSG` or `HMSG`: the payload without headers; `status` is a header status code (e.g. 503
    /// for "no responders") when there was one.
    Msg {
        subject: String,
        sid: u64,
        payload: Vec<u8>,
        status: Option<u16>,
    },
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("malformed NATS operation: {0}")]
pub struct ProtoError(pub &'static str);

const LINE_BYTES_MAX: usize = 64 * 1024;
const PAYLOAD_BYTES_MAX: usize = 64 << 20;

/// Appends `PUB <subject> <reply> <len>\r\n<payload>\r\n`.
pub fn publish(out: &mut Vec<u8>, subject: &str, reply: &str, payload: &[u8]) {
    out.extend_from_slice(format!("PUB {subject} {reply} {}\r\n", payload.len()).as_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

/// Parses one operation from the start of `buf`: `Ok(None)` if incomplete, else the operation
/// and the bytes it took.
pub fn parse(buf: &[u8]) -> Result<Option<(Op, usize)>, ProtoError> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() > LINE_BYTES_MAX {
            return Err(ProtoError("control line too long"));
        }
        return Ok(None);
    };
    let line = std::str::from_utf8(&buf[..end]).map_err(|_| ProtoError("line is not UTF-8"))?;
    let after = end + 2;
    let mut words = line.split_ascii_whitespace();
    let verb = words.next().unwrap_or("").to_ascii_uppercase();
    let words: Vec<&str> = words.collect();
    match verb.as_str() {
        "INFO" => Ok(Some((Op::Info, after))),
        "+OK" => Ok(Some((Op::Ok, after))),
        "-ERR" => Ok(Some((Op::Err(line[4..].trim().to_owned()), after))),
        "PING" => Ok(Some((Op::Ping, after))),
        "PONG" => Ok(Some((Op::Pong, after))),
        "MSG" | "HMSG" => {
            let headers = verb == "HMSG";
            // MSG <subject> <sid> [reply] <len>; HMSG <subject> <sid> [reply] <hdr len> <len>
            let numbers = if headers { 2 } else { 1 };
            if words.len() < 2 + numbers || words.len() > 3 + numbers {
                return Err(ProtoError("wrong number of MSG fields"));
            }
            let number = |w: &str| w.parse::<usize>().map_err(|_| ProtoError("bad number"));
            let total = number(words[words.len() - 1])?;
            let header_len = if headers {
                number(words[words.len() - 2])?
            } else {
                0
            };
            if total > PAYLOAD_BYTES_MAX || header_len > total {
                return Err(ProtoError("bad message length"));
            }
            let sid = words[1].parse::<u64>().map_err(|_| ProtoError("bad sid"))?;
            let body_end = after + total;
            if buf.len() < body_end + 2 {
                return Ok(None);
            }
            if &buf[body_end..body_end + 2] != b"\r\n" {
                return Err(ProtoError("payload not followed by CRLF"));
            }
            let status = headers
                .then(|| header_status(&buf[after..after + header_len]))
                .flatten();
            Ok(Some((
                Op::Msg {
                    subject: words[0].to_owned(),
                    sid,
                    payload: buf[after + header_len..body_end].to_vec(),
                    status,
                },
                body_end + 2,
            )))
        }
        _ => Err(ProtoError("unknown operation")),
    }
}

/// The status code of a `NATS/1.0 503` header block's first line, if it has one.
fn header_status(headers: &[u8]) -> Option<u16> {
    let first = headers.split(|&b| b == b'\r').next()?;
    let text = std::str::from_utf8(first).ok()?;
    text.strip_prefix("NATS/1.0")?
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_parse_whole_or_ask_for_more() {
        let msg = b"MSG _INBOX.a.1 1 22\r\n{\"stream\":\"s\",\"seq\":1}\r\n";
        let (op, used) = parse(msg).unwrap().unwrap();
        assert_eq!(used, msg.len());
        assert_eq!(
            op,
            Op::Msg {
                subject: "_INBOX.a.1".into(),
                sid: 1,
                payload: b"{\"stream\":\"s\",\"seq\":1}".to_vec(),
                status: None
            }
        );
        for cut in 0..msg.len() {
            assert_eq!(parse(&msg[..cut]).unwrap(), None, "cut at {cut}");
        }
        let with_reply = b"MSG t.0 2 $JS.ACK.x 3\r\nabc\r\n";
        assert!(matches!(
            parse(with_reply).unwrap().unwrap().0,
            Op::Msg { sid: 2, .. }
        ));
        let hmsg = b"HMSG _INBOX.a.2 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n";
        let Op::Msg {
            status, payload, ..
        } = parse(hmsg).unwrap().unwrap().0
        else {
            panic!()
        };
        assert_eq!((status, payload.len()), (Some(503), 0));
        assert_eq!(parse(b"PING\r\n").unwrap(), Some((Op::Ping, 6)));
        assert_eq!(
            parse(b"-ERR 'Authorization Violation'\r\n")
                .unwrap()
                .unwrap()
                .0,
            Op::Err("'Authorization Violation'".into())
        );
        assert!(parse(b"BOGUS\r\n").is_err());
        assert!(parse(b"MSG a b 3\r\nabc\r\n").is_err(), "bad sid");
        assert!(parse(b"MSG a 1 3\r\nabcd\r\n").is_err(), "bad terminator");
        assert!(parse(&vec![b'x'; LINE_BYTES_MAX + 1]).is_err());
    }

    #[test]
    fn publish_is_framed() {
        let mut out = Vec::new();
        publish(&mut out, "t.0", "_INBOX.a.1", b"xy");
        assert_eq!(out, b"PUB t.0 _INBOX.a.1 2\r\nxy\r\n");
    }
}
