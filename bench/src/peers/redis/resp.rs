//! RESP2, as much as the bench needs: commands out, any reply in.
//!
//! Replies are parsed from a byte buffer by a plain recursive parser that returns `None` while
//! the buffer holds only part of a value, so the connection's reader just reads more and tries
//! again. Limits: nesting depth 8, bulk strings up to 512 MiB (Redis's own limit); anything else
//! malformed is a [`RespError`].

/// One reply value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Vec<u8>),
    Array(Vec<Value>),
    Nil,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("malformed RESP reply: {0}")]
pub struct RespError(pub &'static str);

const DEPTH_MAX: usize = 8;
const BULK_BYTES_MAX: i64 = 512 << 20;

/// Appends one command as a RESP array of bulk strings.
pub fn command(out: &mut Vec<u8>, parts: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", parts.len()).as_bytes());
    for part in parts {
        out.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
}

/// Parses one value from the start of `buf`: `Ok(None)` if `buf` holds only part of it, else the
/// value and the bytes it took. A first pass only checks that the value is complete (no
/// allocation), so a large reply arriving in many reads is not rebuilt after every read.
pub fn parse(buf: &[u8]) -> Result<Option<(Value, usize)>, RespError> {
    let Some((_, len)) = walk(buf, 0, false)? else {
        return Ok(None);
    };
    let (value, used) = walk(&buf[..len], 0, true)?.expect("the value was found complete");
    Ok(Some((value.expect("values are built when asked"), used)))
}

fn line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    Some((&buf[..end], end + 2))
}

fn number(text: &[u8]) -> Result<i64, RespError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or(RespError("not a number"))
}

/// Walks one value: `None` while incomplete; else its length, and the value when `build`.
fn walk(
    buf: &[u8],
    depth: usize,
    build: bool,
) -> Result<Option<(Option<Value>, usize)>, RespError> {
    if depth > DEPTH_MAX {
        return Err(RespError("nested too deep"));
    }
    let Some((&kind, rest)) = buf.split_first() else {
        return Ok(None);
    };
    let Some((text, used)) = line(rest) else {
        return Ok(None);
    };
    let head = 1 + used;
    let string = || String::from_utf8_lossy(text).into_owned();
    let value = |v: Value| build.then_some(v);
    match kind {
        b'+' => Ok(Some((value(Value::Simple(string())), head))),
        b'-' => Ok(Some((value(Value::Error(string())), head))),
        b':' => Ok(Some((value(Value::Integer(number(text)?)), head))),
        b'$' => {
            let len = number(text)?;
            if len < 0 {
                return Ok(Some((value(Value::Nil), head)));
            }
            if len > BULK_BYTES_MAX {
                return Err(RespError("bulk string too long"));
            }
            let end = head + len as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(RespError("bulk string not followed by CRLF"));
            }
            let bulk = build.then(|| Value::Bulk(buf[head..end].to_vec()));
            Ok(Some((bulk, end + 2)))
        }
        b'*' => {
            let count = number(text)?;
            if count < 0 {
                return Ok(Some((value(Value::Nil), head)));
            }
            let mut items = Vec::new();
            let mut at = head;
            for _ in 0..count {
                match walk(&buf[at..], depth + 1, build)? {
                    Some((item, used)) => {
                        items.extend(item);
                        at += used;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((build.then_some(Value::Array(items)), at)))
        }
        _ => Err(RespError("unknown type byte")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_framed() {
        let mut out = Vec::new();
        command(&mut out, &[b"XADD", b"t", b"*", b"f", b"xy"]);
        assert_eq!(
            out,
            b"*5\r\n$4\r\nXADD\r\n$1\r\nt\r\n$1\r\n*\r\n$1\r\nf\r\n$2\r\nxy\r\n"
        );
    }

    #[test]
    fn replies_parse_whole_or_ask_for_more() {
        let xread =
            b"*1\r\n*2\r\n$1\r\nt\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$2\r\nxy\r\n";
        let (value, used) = parse(xread).unwrap().unwrap();
        assert_eq!(used, xread.len());
        let Value::Array(streams) = value else {
            panic!()
        };
        assert_eq!(streams.len(), 1);
        for cut in 0..xread.len() {
            assert_eq!(parse(&xread[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(parse(b"*-1\r\n").unwrap(), Some((Value::Nil, 5)));
        assert_eq!(
            parse(b"-ERR no\r\n").unwrap(),
            Some((Value::Error("ERR no".into()), 9))
        );
        assert!(parse(b"?\r\n").is_err());
        assert!(parse(b"$2\r\nabXY").is_err());
        assert!(parse(b":x\r\n").is_err());
        let deep = "*1\r\n".repeat(20);
        assert!(parse(deep.as_bytes()).is_err());
    }
}
