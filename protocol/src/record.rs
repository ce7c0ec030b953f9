//! The record: one message as RocketMQ knows it, the unit inside a [`crate::batch`].
//!
//! A record carries everything a RocketMQ message carries that its producer decides: tags, keys
//! (several), user properties, the born timestamp and host, the user flag and system flag, the
//! reconsume count and a unique message id (RocketMQ's `UNIQ_KEY`). What the broker decides — the
//! queue, the queue offset, the store timestamp, the log position — lives in the batch header and
//! the index, stamped once per batch, so the records themselves are never re-encoded.
//!
//! Tags are filtered on the broker by their hash, computed once when a batch arrives
//! ([`tag_code`], Java `String.hashCode` semantics so a RocketMQ client's subscription hashes
//! agree) and kept in the queue index.

use rkyv::munge::munge;
use rkyv::rancor::{Fallible, Source};
use rkyv::ser::{Allocator, Writer};
use rkyv::string::{ArchivedString, StringResolver};
use rkyv::vec::{ArchivedVec, VecResolver};
use rkyv::{Archive, Deserialize, Place, Serialize};

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Property {
    pub name: String,
    pub value: String,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// When the producer created the message (ms since the epoch).
    pub born_timestamp_ms: u64,
    /// The producer's address: 4 (IPv4) or 16 (IPv6) address bytes, then the port as 2 bytes big
    /// endian; empty when unknown.
    pub born_host: Vec<u8>,
    /// RocketMQ's user flag (`Message.flag`), stored as given.
    pub flag: i32,
    /// RocketMQ's `MessageSysFlag` bits the producer set (compression, transaction type).
    pub sys_flag: u32,
    /// How many times this message was consumed and sent back before.
    pub reconsume_times: u32,
    /// RocketMQ's `TAGS`: one tag, or empty for none.
    pub tags: String,
    /// RocketMQ's `KEYS`, one entry per key.
    pub keys: Vec<String>,
    /// RocketMQ's `UNIQ_KEY`: the producer's id of this message (32 hex digits for IPv4), or
    /// empty.
    pub unique_id: String,
    /// Every other property, in the producer's order.
    pub properties: Vec<Property>,
    pub payload: Vec<u8>,
}

/// A record whose bytes and texts are borrowed (a front end translating another protocol's
/// message, which already holds them): archived exactly as the [`Record`] with the same fields
/// (the impls below serialize the fields in `Record`'s order, so the bytes are identical), so
/// encoding it skips copying each payload into a `Record` first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordRef<'a> {
    pub born_timestamp_ms: u64,
    pub born_host: &'a [u8],
    pub flag: i32,
    pub sys_flag: u32,
    pub reconsume_times: u32,
    pub tags: &'a str,
    pub keys: Vec<String>,
    pub unique_id: &'a str,
    pub properties: Vec<Property>,
    pub payload: &'a [u8],
}

pub struct RecordRefResolver {
    born_host: VecResolver,
    tags: StringResolver,
    keys: VecResolver,
    unique_id: StringResolver,
    properties: VecResolver,
    payload: VecResolver,
}

impl Archive for RecordRef<'_> {
    type Archived = ArchivedRecord;
    type Resolver = RecordRefResolver;

    fn resolve(&self, r: Self::Resolver, out: Place<ArchivedRecord>) {
        munge!(let ArchivedRecord {
            born_timestamp_ms, born_host, flag, sys_flag, reconsume_times, tags, keys, unique_id,
            properties, payload
        } = out);
        self.born_timestamp_ms.resolve((), born_timestamp_ms);
        ArchivedVec::resolve_from_len(self.born_host.len(), r.born_host, born_host);
        self.flag.resolve((), flag);
        self.sys_flag.resolve((), sys_flag);
        self.reconsume_times.resolve((), reconsume_times);
        ArchivedString::resolve_from_str(self.tags, r.tags, tags);
        ArchivedVec::resolve_from_len(self.keys.len(), r.keys, keys);
        ArchivedString::resolve_from_str(self.unique_id, r.unique_id, unique_id);
        ArchivedVec::resolve_from_len(self.properties.len(), r.properties, properties);
        ArchivedVec::resolve_from_len(self.payload.len(), r.payload, payload);
    }
}

impl<S> Serialize<S> for RecordRef<'_>
where
    S: Fallible + Allocator + Writer + ?Sized,
    S::Error: Source,
    String: Serialize<S>,
    Property: Serialize<S>,
{
    fn serialize(&self, s: &mut S) -> Result<RecordRefResolver, S::Error> {
        Ok(RecordRefResolver {
            born_host: ArchivedVec::<u8>::serialize_from_slice(self.born_host, s)?,
            tags: ArchivedString::serialize_from_str(self.tags, s)?,
            keys: ArchivedVec::<ArchivedString>::serialize_from_slice(&self.keys, s)?,
            unique_id: ArchivedString::serialize_from_str(self.unique_id, s)?,
            properties: ArchivedVec::<ArchivedProperty>::serialize_from_slice(&self.properties, s)?,
            payload: ArchivedVec::<u8>::serialize_from_slice(self.payload, s)?,
        })
    }
}

impl Record {
    /// This record, borrowed (keys and properties copied).
    pub fn borrowed(&self) -> RecordRef<'_> {
        RecordRef {
            born_timestamp_ms: self.born_timestamp_ms,
            born_host: &self.born_host,
            flag: self.flag,
            sys_flag: self.sys_flag,
            reconsume_times: self.reconsume_times,
            tags: &self.tags,
            keys: self.keys.clone(),
            unique_id: &self.unique_id,
            properties: self.properties.clone(),
            payload: &self.payload,
        }
    }
}

impl RecordRef<'_> {
    /// As [`Record::encoded_bytes_estimate`].
    pub fn encoded_bytes_estimate(&self) -> usize {
        estimate(
            self.payload.len() + self.born_host.len() + self.tags.len() + self.unique_id.len(),
            &self.keys,
            &self.properties,
        )
    }
}

/// Bytes an encoded record takes beyond its variable-length fields, at most: the archived record
/// with its fixed fields and the headers of its strings and vectors, plus alignment.
pub const RECORD_OVERHEAD_BYTES: usize = 160;
/// Bytes a key or property adds beyond its text: string headers and alignment.
const ENTRY_OVERHEAD_BYTES: usize = 24;

/// The estimate of a record with `flat` bytes of payload, host, tags and id, and these keys and
/// properties (shared by [`Record`] and [`RecordRef`]).
fn estimate(flat: usize, keys: &[String], properties: &[Property]) -> usize {
    flat + keys
        .iter()
        .map(|k| k.len() + ENTRY_OVERHEAD_BYTES)
        .sum::<usize>()
        + properties
            .iter()
            .map(|p| p.name.len() + p.value.len() + ENTRY_OVERHEAD_BYTES)
            .sum::<usize>()
        + RECORD_OVERHEAD_BYTES
}

impl Record {
    /// A close upper estimate of the bytes this record adds to an encoded batch: what the
    /// producer, the batch builder and the encoder all size batches by.
    pub fn encoded_bytes_estimate(&self) -> usize {
        estimate(
            self.payload.len() + self.born_host.len() + self.tags.len() + self.unique_id.len(),
            &self.keys,
            &self.properties,
        )
    }
}

impl ArchivedRecord {
    /// The value of the first user property named `name`.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|p| p.name.as_str() == name)
            .map(|p| p.value.as_str())
    }

    /// This record's [`tag_code`].
    pub fn tag_code(&self) -> i64 {
        tag_code(self.tags.as_str())
    }
}

/// The code a tag is filtered by: Java's `String.hashCode()` of the tag (over its UTF-16 code
/// units, wrapping 32-bit arithmetic), widened to 64 bits; 0 for no tag. RocketMQ's consume
/// queue holds the same value (`tagsCode`), and a subscription's hash set is computed the same
/// way by every RocketMQ client, so the broker can match either without reading the message.
/// A record's `born_host` for a client at `addr`: the address bytes (4 or 16), then the port
/// big-endian, as RocketMQ stores it.
pub fn born_host_bytes(addr: std::net::SocketAddr) -> Vec<u8> {
    let mut out = match addr.ip() {
        std::net::IpAddr::V4(ip) => ip.octets().to_vec(),
        std::net::IpAddr::V6(ip) => ip.octets().to_vec(),
    };
    out.extend_from_slice(&addr.port().to_be_bytes());
    out
}

/// The address of a `born_host` ([`born_host_bytes`]'s reverse), `None` for another length.
pub fn born_host_addr(bytes: &[u8]) -> Option<std::net::SocketAddr> {
    let port = u16::from_be_bytes(bytes.get(bytes.len().checked_sub(2)?..)?.try_into().ok()?);
    let ip: std::net::IpAddr = match bytes.len() {
        6 => <[u8; 4]>::try_from(&bytes[..4]).ok()?.into(),
        18 => <[u8; 16]>::try_from(&bytes[..16]).ok()?.into(),
        _ => return None,
    };
    Some(std::net::SocketAddr::new(ip, port))
}

pub fn tag_code(tags: &str) -> i64 {
    if tags.is_empty() {
        return 0;
    }
    i64::from(java_string_hash(tags))
}

/// Java `String.hashCode()`: `s[0]*31^(n-1) + ... + s[n-1]` over UTF-16 code units, in `i32`.
pub fn java_string_hash(text: &str) -> i32 {
    text.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_born_host_reads_back_as_its_address() {
        for addr in ["10.0.0.7:8080", "[::1]:9"] {
            let addr: std::net::SocketAddr = addr.parse().unwrap();
            assert_eq!(
                super::born_host_addr(&super::born_host_bytes(addr)),
                Some(addr)
            );
        }
        assert_eq!(super::born_host_addr(&[1, 2, 3]), None);
        assert_eq!(super::born_host_addr(&[]), None);
    }

    use super::*;

    #[test]
    fn java_hash_codes_match_the_jvm() {
        // Java semantics: "hello".hashCode() = 99162322, "polygenelubricants" wraps to MIN_VALUE.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("TagA"), 2_598_919);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        // Outside the BMP a character is two UTF-16 units: "😀" = \ud83d\ude00.
        assert_eq!(java_string_hash("😀"), 1_772_899);
        assert_eq!(java_string_hash("é"), 233);
        assert_eq!(tag_code(""), 0);
        assert_eq!(tag_code("TagA"), 2_598_919);
    }
}
