//! RocketMQ remoting commands as the bench needs them (see
//! `../shared/reference/rocketmq-protocol.md` §2, §4, §5): requests encoded with a JSON header
//! the way the Java client writes them (every extField a string, `serializeTypeCurrentRPC`
//! present), responses decoded from either header type (JSON or the binary ROCKETMQ layout),
//! the SEND_BATCH_MESSAGE body, and the stored-message records of a pull response body.
//!
//! Limits: a frame is at most 16 MiB (the Java frame limit); a longer length prefix, a header
//! length beyond the frame, or a record that overruns its buffer is a [`RemotingError`], never
//! a panic or an unbounded allocation.

use std::collections::HashMap;

use serde::Deserialize;

/// The Java frame limit: 4-byte length prefix plus the rest.
pub const FRAME_BYTES_MAX: usize = 16 * 1024 * 1024;
/// MQVersion ordinal of 5.3.3, what the bench claims to be.
const VERSION: i32 = 479;

pub const SEND_MESSAGE_V2: i32 = 310;
pub const SEND_BATCH_MESSAGE: i32 = 320;
pub const PULL_MESSAGE: i32 = 11;
pub const UPDATE_AND_CREATE_TOPIC: i32 = 17;
pub const GET_MAX_OFFSET: i32 = 30;
pub const GET_MIN_OFFSET: i32 = 31;
pub const SUCCESS: i32 = 0;
pub const PULL_NOT_FOUND: i32 = 19;
pub const PULL_RETRY_IMMEDIATELY: i32 = 20;
pub const PULL_OFFSET_MOVED: i32 = 21;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RemotingError {
    #[error("frame length {0} outside 4..={FRAME_BYTES_MAX}")]
    FrameLength(usize),
    #[error("header length {header} does not fit a frame of {frame} bytes")]
    HeaderLength { header: usize, frame: usize },
    #[error("bad JSON header: {0}")]
    Json(String),
    #[error("bad binary header: {0}")]
    Binary(&'static str),
    #[error("serialize type {0} is neither JSON (0) nor ROCKETMQ (1)")]
    SerializeType(u8),
    #[error("stored message record: {0}")]
    Record(&'static str),
}

/// One decoded response (or request from the server, which the bench ignores).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Command {
    pub code: i32,
    pub opaque: i32,
    pub flag: i32,
    pub remark: Option<String>,
    pub ext: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Command {
    pub fn is_response(&self) -> bool {
        self.flag & 1 == 1
    }

    /// An extField parsed as a number.
    pub fn ext_i64(&self, key: &str) -> Option<i64> {
        self.ext.get(key)?.parse().ok()
    }
}

/// A request frame: length prefix, serialize type JSON, header, body.
pub fn encode_request(code: i32, opaque: i32, ext: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut fields = serde_json::Map::new();
    for (key, value) in ext {
        fields.insert((*key).to_owned(), serde_json::Value::String(value.clone()));
    }
    let header = serde_json::json!({
        "code": code,
        "extFields": fields,
        "flag": 0,
        "language": "RUST",
        "opaque": opaque,
        "serializeTypeCurrentRPC": "JSON",
        "version": VERSION,
    })
    .to_string();
    let mut frame = Vec::with_capacity(8 + header.len() + body.len());
    frame.extend_from_slice(&((4 + header.len() + body.len()) as u32).to_be_bytes());
    frame.extend_from_slice(&(header.len() as u32 & 0x00FF_FFFF).to_be_bytes());
    frame.extend_from_slice(header.as_bytes());
    frame.extend_from_slice(body);
    frame
}

/// The length the 4-byte prefix announces for the rest of the frame, checked.
pub fn frame_length(prefix: [u8; 4]) -> Result<usize, RemotingError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if !(4..=FRAME_BYTES_MAX - 4).contains(&len) {
        return Err(RemotingError::FrameLength(len));
    }
    Ok(len)
}

#[derive(Deserialize)]
struct JsonHeader {
    code: i32,
    #[serde(default)]
    opaque: i32,
    #[serde(default)]
    flag: i32,
    remark: Option<String>,
    #[serde(rename = "extFields")]
    ext_fields: Option<HashMap<String, serde_json::Value>>,
}

/// Decodes a frame without its length prefix (`rest` = type/header-length word, header, body).
pub fn decode(rest: &[u8]) -> Result<Command, RemotingError> {
    let word: [u8; 4] = rest
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(RemotingError::FrameLength(rest.len()))?;
    let kind = word[0];
    let header_len = (u32::from_be_bytes(word) & 0x00FF_FFFF) as usize;
    let header = rest
        .get(4..4 + header_len)
        .ok_or(RemotingError::HeaderLength {
            header: header_len,
            frame: rest.len(),
        })?;
    let body = rest[4 + header_len..].to_vec();
    let mut command = match kind {
        0 => {
            let h: JsonHeader =
                serde_json::from_slice(header).map_err(|e| RemotingError::Json(e.to_string()))?;
            let ext = h
                .ext_fields
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => (k, s),
                    other => (k, other.to_string()),
                })
                .collect();
            Command {
                code: h.code,
                opaque: h.opaque,
                flag: h.flag,
                remark: h.remark,
                ext,
                body: Vec::new(),
            }
        }
        1 => decode_binary(header)?,
        other => return Err(RemotingError::SerializeType(other)),
    };
    command.body = body;
    Ok(command)
}

/// A cursor over big-endian fields that fails instead of panicking.
struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], &'static str> {
        let end = self.at.checked_add(n).ok_or(what)?;
        let bytes = self.buf.get(self.at..end).ok_or(what)?;
        self.at = end;
        Ok(bytes)
    }
    fn i16(&mut self, what: &'static str) -> Result<i16, &'static str> {
        Ok(i16::from_be_bytes(self.take(2, what)?.try_into().unwrap()))
    }
    fn i32(&mut self, what: &'static str) -> Result<i32, &'static str> {
        Ok(i32::from_be_bytes(self.take(4, what)?.try_into().unwrap()))
    }
    fn i64(&mut self, what: &'static str) -> Result<i64, &'static str> {
        Ok(i64::from_be_bytes(self.take(8, what)?.try_into().unwrap()))
    }
    fn len(&mut self, n: i64, what: &'static str) -> Result<&'a [u8], &'static str> {
        self.take(usize::try_from(n).map_err(|_| what)?, what)
    }
}

fn decode_binary(header: &[u8]) -> Result<Command, RemotingError> {
    let mut c = Cursor { buf: header, at: 0 };
    let parse = |c: &mut Cursor| -> Result<Command, &'static str> {
        let code = i32::from(c.i16("code")?);
        c.take(1, "language")?;
        c.i16("version")?;
        let opaque = c.i32("opaque")?;
        let flag = c.i32("flag")?;
        let remark_len = c.i32("remark length")?;
        let remark = (remark_len > 0)
            .then(|| c.len(i64::from(remark_len), "remark"))
            .transpose()?
            .map(|b| String::from_utf8_lossy(b).into_owned());
        let ext_len = c.i32("ext length")?;
        let ext_bytes = c.len(i64::from(ext_len.max(0)), "ext fields")?;
        let mut e = Cursor {
            buf: ext_bytes,
            at: 0,
        };
        let mut ext = HashMap::new();
        while e.at < ext_bytes.len() {
            let key_len = e.i16("key length")?;
            let key = e.len(i64::from(key_len), "key")?;
            let value_len = e.i32("value length")?;
            let value = e.len(i64::from(value_len), "value")?;
            ext.insert(
                String::from_utf8_lossy(key).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            );
        }
        Ok(Command {
            code,
            opaque,
            flag,
            remark,
            ext,
            body: Vec::new(),
        })
    };
    parse(&mut c).map_err(RemotingError::Binary)
}

/// The SEND_BATCH_MESSAGE body: `count` messages of `payload`, no properties, flag 0.
pub fn batch_body(count: u32, payload: &[u8], properties: &str) -> Vec<u8> {
    let total = 4 + 4 + 4 + 4 + 4 + payload.len() + 2 + properties.len();
    let mut body = Vec::with_capacity(total * count as usize);
    for _ in 0..count {
        body.extend_from_slice(&(total as i32).to_be_bytes());
        body.extend_from_slice(&0i32.to_be_bytes()); // magic: written as 0 by clients
        body.extend_from_slice(&0i32.to_be_bytes()); // body CRC: the broker computes it
        body.extend_from_slice(&0i32.to_be_bytes()); // flag
        body.extend_from_slice(&(payload.len() as i32).to_be_bytes());
        body.extend_from_slice(payload);
        body.extend_from_slice(&(properties.len() as i16).to_be_bytes());
        body.extend_from_slice(properties.as_bytes());
    }
    body
}

/// A message's properties string (§5.3: `name\u{1}value\u{2}` pairs) with `TAGS` when tagged.
pub fn tag_properties(tag: Option<&str>) -> String {
    tag.map(|t| format!("TAGS\u{1}{t}\u{2}"))
        .unwrap_or_default()
}

const MAGIC_V1: i32 = 0xDAA3_20A7_u32 as i32;
const MAGIC_V2: i32 = 0xDAA3_20AB_u32 as i32;
/// sysFlag bits that widen the born / store host to IPv6.
const BORN_HOST_V6: i32 = 0x10;
const STORE_HOST_V6: i32 = 0x20;

/// Calls `each` with the body of every stored message in a pull response body (§5.1); returns
/// how many there were.
pub fn for_each_stored_body(
    mut buf: &[u8],
    each: &mut dyn FnMut(&[u8]),
) -> Result<u64, RemotingError> {
    let mut count = 0;
    while !buf.is_empty() {
        let mut c = Cursor { buf, at: 0 };
        let body = (|| -> Result<(&[u8], usize), &'static str> {
            let total = c.i32("total size")?;
            let total = usize::try_from(total).map_err(|_| "negative total size")?;
            if total > buf.len() || total < 20 {
                return Err("total size overruns the pull body");
            }
            let magic = c.i32("magic")?;
            if magic != MAGIC_V1 && magic != MAGIC_V2 {
                return Err("unknown magic code");
            }
            c.take(4 + 4 + 4 + 8 + 8, "crc..physical offset")?;
            let sys_flag = c.i32("sys flag")?;
            c.i64("born timestamp")?;
            c.take(
                if sys_flag & BORN_HOST_V6 != 0 { 20 } else { 8 },
                "born host",
            )?;
            c.i64("store timestamp")?;
            c.take(
                if sys_flag & STORE_HOST_V6 != 0 { 20 } else { 8 },
                "store host",
            )?;
            c.take(4 + 8, "reconsume..prepared offset")?;
            let body_len = c.i32("body length")?;
            let body = c.len(i64::from(body_len), "body")?;
            if c.at > total {
                return Err("body overruns its record");
            }
            Ok((body, total))
        })()
        .map_err(RemotingError::Record)?;
        each(body.0);
        count += 1;
        buf = &buf[body.1..];
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_frame_matches_the_reference_layout() {
        let frame = encode_request(105, 1, &[("topic", "TopicTest".into())], b"");
        let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 4);
        assert_eq!(frame[4], 0, "serialize type JSON");
        let command = decode(&frame[4..]).unwrap();
        assert_eq!((command.code, command.opaque, command.flag), (105, 1, 0));
        assert_eq!(command.ext["topic"], "TopicTest");
        let header: serde_json::Value = serde_json::from_slice(&frame[8..]).unwrap();
        assert_eq!(header["serializeTypeCurrentRPC"], "JSON");
        assert_eq!(header["version"], 479);
    }

    #[test]
    fn binary_header_from_the_reference_decodes() {
        // §2.3's GET_ROUTEINFO example, without its length prefix.
        let mut rest = vec![0x01, 0x00, 0x00, 0x29];
        rest.extend_from_slice(&[0x00, 0x69, 0x00, 0x01, 0xdf]);
        rest.extend_from_slice(&1i32.to_be_bytes());
        rest.extend_from_slice(&0i32.to_be_bytes());
        rest.extend_from_slice(&0i32.to_be_bytes());
        rest.extend_from_slice(&20i32.to_be_bytes());
        rest.extend_from_slice(&5i16.to_be_bytes());
        rest.extend_from_slice(b"topic");
        rest.extend_from_slice(&9i32.to_be_bytes());
        rest.extend_from_slice(b"TopicTest");
        let command = decode(&rest).unwrap();
        assert_eq!((command.code, command.opaque), (105, 1));
        assert_eq!(command.ext["topic"], "TopicTest");
        assert!(command.body.is_empty());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(frame_length([0xff; 4]).is_err());
        assert!(frame_length([0, 0, 0, 1]).is_err());
        assert!(decode(&[0, 0, 0]).is_err());
        assert!(decode(&[0, 0xff, 0xff, 0xff, b'{']).is_err());
        assert!(decode(&[7, 0, 0, 0]).is_err());
        assert!(
            decode(&[0, 0, 0, 2, b'{', b'}']).is_err(),
            "code is required"
        );
        assert!(decode(&[1, 0, 0, 3, 0, 1, 0]).is_err());
        let mut seed = 7u64;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (seed >> 56) as u8
                })
                .collect();
            let _ = decode(&bytes);
            let _ = for_each_stored_body(&bytes, &mut |_| {});
        }
    }

    /// A stored record as §5.1's offsets lay it out (IPv4 hosts, V1 magic, no properties): the
    /// body length sits at 84, so the total is 91 + body + topic + properties (Java's
    /// `calMsgLength`; §5.1's "99 + n + t + p" summary overcounts by 8).
    fn stored(body: &[u8], topic: &str) -> Vec<u8> {
        let total = 91 + body.len() + topic.len();
        let mut r = Vec::new();
        r.extend_from_slice(&(total as i32).to_be_bytes());
        r.extend_from_slice(&MAGIC_V1.to_be_bytes());
        r.extend_from_slice(&[0u8; 4 + 4 + 4 + 8 + 8]);
        r.extend_from_slice(&0i32.to_be_bytes());
        r.extend_from_slice(&[0u8; 8 + 8 + 8 + 8 + 4 + 8]);
        r.extend_from_slice(&(body.len() as i32).to_be_bytes());
        r.extend_from_slice(body);
        r.push(topic.len() as u8);
        r.extend_from_slice(topic.as_bytes());
        r.extend_from_slice(&0i16.to_be_bytes());
        assert_eq!(r.len(), total);
        r
    }

    #[test]
    fn pull_bodies_walk_record_by_record() {
        let mut buf = stored(b"first", "t");
        buf.extend(stored(b"second!", "topic"));
        let mut seen = Vec::new();
        let n = for_each_stored_body(&buf, &mut |b| seen.push(b.to_vec())).unwrap();
        assert_eq!(n, 2);
        assert_eq!(seen, vec![b"first".to_vec(), b"second!".to_vec()]);
        buf.truncate(buf.len() - 3);
        assert!(
            for_each_stored_body(&buf, &mut |_| {}).is_err(),
            "a torn record"
        );
    }

    #[test]
    fn batch_body_layout() {
        let body = batch_body(2, b"abc", "");
        assert_eq!(body.len(), 2 * 25);
        assert_eq!(i32::from_be_bytes(body[..4].try_into().unwrap()), 25);
        assert_eq!(&body[20..23], b"abc");
        let tagged = batch_body(1, b"abc", &tag_properties(Some("A")));
        assert_eq!(&tagged[23..25], &7i16.to_be_bytes());
        assert_eq!(&tagged[25..], b"TAGS\x01A\x02");
    }
}
