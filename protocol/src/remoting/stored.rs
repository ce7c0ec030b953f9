//! The stored-message record of §5.1, which is also the body of pull, query and view responses:
//! the broker encodes one per message it sends ([`StoredMessage::encode_into`]), clients and the
//! bench walk a body record by record ([`decode_all`]).
//!
//! Layout (big-endian, IPv4 hosts): total size 4 | magic 4 (V1 0xDAA320A7) | body CRC 4 (CRC32
//! & 0x7FFFFFFF) | queue id 4 | flag 4 | queue offset 8 | physical offset 8 | sys flag 4 | born
//! timestamp 8 | born host 8 | store timestamp 8 | store host 8 | reconsume times 4 | prepared
//! transaction offset 8 | body 4 + n | topic 1 + t | properties 2 + p. Total 91 + n + t + p;
//! each IPv6 host adds 12 bytes and sets its sys-flag bit. 4.x clients read only the V1 magic,
//! so topics are at most 127 bytes (RocketMQ's own limit) and properties at most 32767.

use std::net::{IpAddr, SocketAddr};

use super::cursor::Cursor;

pub const MAGIC_V1: i32 = 0xDAA3_20A7_u32 as i32;
pub const MAGIC_V2: i32 = 0xDAA3_20AB_u32 as i32;
/// sys-flag bits (§5.3).
pub const SYS_FLAG_COMPRESSED: i32 = 0x1;
pub const SYS_FLAG_BORN_HOST_V6: i32 = 0x10;
pub const SYS_FLAG_STORE_HOST_V6: i32 = 0x20;
/// Bytes of a record around its body, topic and properties (IPv4 hosts).
pub const STORED_FIXED_BYTES: usize = 91;
pub const TOPIC_BYTES_MAX_V1: usize = 127;
pub const PROPERTIES_BYTES_MAX: usize = i16::MAX as usize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoredError {
    #[error("topic of {0} bytes does not fit a V1 record (at most {TOPIC_BYTES_MAX_V1})")]
    TopicTooLong(usize),
    #[error("properties of {0} bytes exceed {PROPERTIES_BYTES_MAX}")]
    PropertiesTooLong(usize),
    #[error("stored message record: {0}")]
    Malformed(&'static str),
}

/// One message as a pull response carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage<'a> {
    pub queue_id: i32,
    pub flag: i32,
    pub queue_offset: i64,
    pub physical_offset: i64,
    /// Without the host bits: those follow from the addresses.
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_timestamp: i64,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    pub body: &'a [u8],
    pub topic: &'a str,
    pub properties: &'a str,
}

fn host_bytes(addr: &SocketAddr) -> usize {
    if addr.is_ipv6() {
        20
    } else {
        8
    }
}

fn push_host(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&i32::from(addr.port()).to_be_bytes());
}

impl StoredMessage<'_> {
    pub fn encoded_len(&self) -> usize {
        STORED_FIXED_BYTES - 16
            + host_bytes(&self.born_host)
            + host_bytes(&self.store_host)
            + self.body.len()
            + self.topic.len()
            + self.properties.len()
    }

    pub fn sys_flag_on_wire(&self) -> i32 {
        let mut flag = self.sys_flag & !(SYS_FLAG_BORN_HOST_V6 | SYS_FLAG_STORE_HOST_V6);
        if self.born_host.is_ipv6() {
            flag |= SYS_FLAG_BORN_HOST_V6;
        }
        if self.store_host.is_ipv6() {
            flag |= SYS_FLAG_STORE_HOST_V6;
        }
        flag
    }

    /// Appends the record to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), StoredError> {
        if self.topic.len() > TOPIC_BYTES_MAX_V1 {
            return Err(StoredError::TopicTooLong(self.topic.len()));
        }
        if self.properties.len() > PROPERTIES_BYTES_MAX {
            return Err(StoredError::PropertiesTooLong(self.properties.len()));
        }
        let total = self.encoded_len();
        let start = out.len();
        out.reserve(total);
        out.extend_from_slice(&(total as i32).to_be_bytes());
        out.extend_from_slice(&MAGIC_V1.to_be_bytes());
        let crc = (crc32fast::hash(self.body) & 0x7FFF_FFFF) as i32;
        out.extend_from_slice(&crc.to_be_bytes());
        out.extend_from_slice(&self.queue_id.to_be_bytes());
        out.extend_from_slice(&self.flag.to_be_bytes());
        out.extend_from_slice(&self.queue_offset.to_be_bytes());
        out.extend_from_slice(&self.physical_offset.to_be_bytes());
        out.extend_from_slice(&self.sys_flag_on_wire().to_be_bytes());
        out.extend_from_slice(&self.born_timestamp.to_be_bytes());
        push_host(out, &self.born_host);
        out.extend_from_slice(&self.store_timestamp.to_be_bytes());
        push_host(out, &self.store_host);
        out.extend_from_slice(&self.reconsume_times.to_be_bytes());
        out.extend_from_slice(&self.prepared_transaction_offset.to_be_bytes());
        out.extend_from_slice(&(self.body.len() as i32).to_be_bytes());
        out.extend_from_slice(self.body);
        out.push(self.topic.len() as u8);
        out.extend_from_slice(self.topic.as_bytes());
        out.extend_from_slice(&(self.properties.len() as i16).to_be_bytes());
        out.extend_from_slice(self.properties.as_bytes());
        debug_assert_eq!(out.len() - start, total);
        Ok(())
    }
}

/// A record read back from a response body; hosts as addresses, text fields lossy UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedMessage<'a> {
    pub queue_id: i32,
    pub flag: i32,
    pub queue_offset: i64,
    pub physical_offset: i64,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_timestamp: i64,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    pub body_crc: i32,
    pub body: &'a [u8],
    pub topic: String,
    pub properties: String,
}

fn read_host(c: &mut Cursor, v6: bool, what: &'static str) -> Result<SocketAddr, &'static str> {
    let ip = if v6 {
        let octets: [u8; 16] = c.take(16, what)?.try_into().map_err(|_| what)?;
        IpAddr::from(octets)
    } else {
        let octets: [u8; 4] = c.take(4, what)?.try_into().map_err(|_| what)?;
        IpAddr::from(octets)
    };
    let port = c.i32(what)?;
    Ok(SocketAddr::new(ip, u16::try_from(port).unwrap_or(0)))
}

fn decode_one<'a>(c: &mut Cursor<'a>) -> Result<DecodedMessage<'a>, &'static str> {
    let start = c.position();
    let total = usize::try_from(c.i32("total size")?).map_err(|_| "negative total size")?;
    if total < STORED_FIXED_BYTES || total > c.remaining() + 4 {
        return Err("total size outside the response body");
    }
    let magic = c.i32("magic")?;
    if magic != MAGIC_V1 && magic != MAGIC_V2 {
        return Err("unknown magic code");
    }
    let body_crc = c.i32("body crc")?;
    let queue_id = c.i32("queue id")?;
    let flag = c.i32("flag")?;
    let queue_offset = c.i64("queue offset")?;
    let physical_offset = c.i64("physical offset")?;
    let sys_flag = c.i32("sys flag")?;
    let born_timestamp = c.i64("born timestamp")?;
    let born_host = read_host(c, sys_flag & SYS_FLAG_BORN_HOST_V6 != 0, "born host")?;
    let store_timestamp = c.i64("store timestamp")?;
    let store_host = read_host(c, sys_flag & SYS_FLAG_STORE_HOST_V6 != 0, "store host")?;
    let reconsume_times = c.i32("reconsume times")?;
    let prepared_transaction_offset = c.i64("prepared transaction offset")?;
    let body_len = c.i32("body length")?;
    let body = c.sized(i64::from(body_len), "body")?;
    let topic_len = if magic == MAGIC_V1 {
        i64::from(c.u8("topic length")?)
    } else {
        i64::from(c.i16("topic length")?)
    };
    let topic = String::from_utf8_lossy(c.sized(topic_len, "topic")?).into_owned();
    let properties_len = c.i16("properties length")?;
    let properties = c.sized(i64::from(properties_len), "properties")?;
    if c.position() - start != total {
        return Err("total size disagrees with the fields");
    }
    Ok(DecodedMessage {
        queue_id,
        flag,
        queue_offset,
        physical_offset,
        sys_flag,
        born_timestamp,
        born_host,
        store_timestamp,
        store_host,
        reconsume_times,
        prepared_transaction_offset,
        body_crc,
        body,
        topic,
        properties: String::from_utf8_lossy(properties).into_owned(),
    })
}

/// Every record of a response body, in order; a torn or inconsistent record is an error.
pub fn decode_all(body: &[u8]) -> Result<Vec<DecodedMessage<'_>>, StoredError> {
    let mut c = Cursor::new(body);
    let mut out = Vec::new();
    while c.remaining() > 0 {
        out.push(decode_one(&mut c).map_err(StoredError::Malformed)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message<'a>(body: &'a [u8], topic: &'a str, properties: &'a str) -> StoredMessage<'a> {
        StoredMessage {
            queue_id: 3,
            flag: 7,
            queue_offset: 42,
            physical_offset: 4096,
            sys_flag: 0,
            born_timestamp: 1_700_000_000_000,
            born_host: "10.0.0.5:5555".parse().unwrap(),
            store_timestamp: 1_700_000_000_001,
            store_host: "127.0.0.1:10911".parse().unwrap(),
            reconsume_times: 1,
            prepared_transaction_offset: 0,
            body,
            topic,
            properties,
        }
    }

    #[test]
    fn records_round_trip_with_the_reference_offsets() {
        let m = message(b"hello", "TopicTest", "TAGS\u{1}a\u{2}");
        let mut out = Vec::new();
        m.encode_into(&mut out).unwrap();
        assert_eq!(out.len(), 91 + 5 + 9 + 7);
        // Java's offsets: flag at 16, physical offset at 28, sys flag at 36, store time at 56.
        assert_eq!(i32::from_be_bytes(out[16..20].try_into().unwrap()), 7);
        assert_eq!(i64::from_be_bytes(out[28..36].try_into().unwrap()), 4096);
        assert_eq!(
            i64::from_be_bytes(out[56..64].try_into().unwrap()),
            1_700_000_000_001
        );
        assert_eq!(i32::from_be_bytes(out[84..88].try_into().unwrap()), 5);
        let v6 = StoredMessage {
            born_host: "[::1]:1".parse().unwrap(),
            ..message(b"x", "t", "")
        };
        v6.encode_into(&mut out).unwrap();
        let decoded = decode_all(&out).unwrap();
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[0].body, b"hello");
        assert_eq!(decoded[0].topic, "TopicTest");
        assert_eq!(decoded[0].properties, "TAGS\u{1}a\u{2}");
        assert_eq!(decoded[0].queue_offset, 42);
        assert_eq!(decoded[0].born_host, m.born_host);
        assert_eq!(
            decoded[0].body_crc,
            (crc32fast::hash(b"hello") & 0x7FFF_FFFF) as i32
        );
        assert_eq!(
            decoded[1].sys_flag & SYS_FLAG_BORN_HOST_V6,
            SYS_FLAG_BORN_HOST_V6
        );
        assert_eq!(decoded[1].born_host, v6.born_host);
    }

    #[test]
    fn truncation_at_every_byte_is_an_error() {
        let mut out = Vec::new();
        message(b"payload", "t", "KEYS\u{1}k\u{2}")
            .encode_into(&mut out)
            .unwrap();
        for cut in 1..out.len() {
            assert!(decode_all(&out[..cut]).is_err(), "cut at {cut}");
        }
        let long = "x".repeat(128);
        assert_eq!(
            message(b"", &long, "").encode_into(&mut Vec::new()),
            Err(StoredError::TopicTooLong(128))
        );
    }
}
