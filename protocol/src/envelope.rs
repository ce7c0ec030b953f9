//! Layout of every frame payload:
//! `[meta_len: u32][data_len: u32][reserved: 8 zero bytes][meta: rkyv archive][pad to 16][data]`.
//!
//! The metadata is a small rkyv archive (a request or reply type from [`crate::messages`]); the
//! data is raw bytes that need no re-encoding: one record batch in a produce request, the stored
//! batches in a pull reply. Keeping the data outside the archive is what lets the same batch
//! bytes go producer → log → consumer, and lets a writer send metadata and data as two slices.
//!
//! Invariants checked on decode: `meta_len <= META_BYTES_MAX`, and the three parts add up to the
//! payload length exactly (no trailing bytes, no truncation). Data starts 16-byte aligned
//! relative to the payload start.

use rkyv::api::high::{HighDeserializer, HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::limits::{align_up, META_BYTES_MAX};

pub const ENVELOPE_PREFIX_BYTES: usize = 16;

/// Serializes `meta` and returns the payload prefix: everything before the data. The caller sends
/// the prefix and then `data_len` bytes of data.
///
/// Fails, instead of producing a frame the peer must refuse, when the metadata archive exceeds
/// `META_BYTES_MAX` or the data part cannot be described by a `u32` length. Metadata may hold
/// strings a peer sent (names, error texts), so an oversize archive is an input error, not a
/// bug: callers answer with a small error instead.
pub fn encode_prefix<T>(meta: &T, data_len: usize) -> Result<Vec<u8>, ProtocolError>
where
    T: for<'a> Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
{
    let archive = rkyv::to_bytes::<rancor::Error>(meta)
        .map_err(|e| ProtocolError::BadArchive(e.to_string()))?;
    if archive.len() > META_BYTES_MAX as usize {
        return Err(ProtocolError::MetaTooLarge {
            len: u32::try_from(archive.len()).unwrap_or(u32::MAX),
            max: META_BYTES_MAX,
        });
    }
    let data_len = u32::try_from(data_len).map_err(|_| ProtocolError::FrameTooLarge {
        len: u32::MAX,
        max: crate::limits::FRAME_PAYLOAD_BYTES_MAX,
    })?;
    let mut prefix = Vec::with_capacity(ENVELOPE_PREFIX_BYTES + align_up(archive.len()));
    prefix.extend_from_slice(&(archive.len() as u32).to_le_bytes());
    prefix.extend_from_slice(&data_len.to_le_bytes());
    prefix.extend_from_slice(&[0u8; 8]);
    prefix.extend_from_slice(&archive);
    prefix.resize(ENVELOPE_PREFIX_BYTES + align_up(archive.len()), 0);
    Ok(prefix)
}

/// Serializes a whole payload with no data part.
pub fn encode<T>(meta: &T) -> Result<Vec<u8>, ProtocolError>
where
    T: for<'a> Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
{
    encode_prefix(meta, 0)
}

/// Splits a payload into its metadata archive and its data, checking every length.
pub fn split(payload: &[u8]) -> Result<(&[u8], &[u8]), ProtocolError> {
    let prefix = payload
        .get(..ENVELOPE_PREFIX_BYTES)
        .ok_or(ProtocolError::Truncated {
            need: ENVELOPE_PREFIX_BYTES,
            have: payload.len(),
        })?;
    let meta_len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    let data_len = u32::from_le_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
    if meta_len > META_BYTES_MAX {
        return Err(ProtocolError::MetaTooLarge {
            len: meta_len,
            max: META_BYTES_MAX,
        });
    }
    let data_start = ENVELOPE_PREFIX_BYTES + align_up(meta_len as usize);
    let need = data_start + data_len as usize;
    if payload.len() < need {
        return Err(ProtocolError::Truncated {
            need,
            have: payload.len(),
        });
    }
    if payload.len() > need {
        return Err(ProtocolError::TrailingBytes(payload.len() - need));
    }
    let meta = &payload[ENVELOPE_PREFIX_BYTES..ENVELOPE_PREFIX_BYTES + meta_len as usize];
    Ok((meta, &payload[data_start..]))
}

/// Validates and deserializes a metadata archive from untrusted bytes. Metadata is small, so it
/// is copied to an aligned buffer when the frame buffer happens not to be aligned.
pub fn decode_meta<T>(meta: &[u8]) -> Result<T, ProtocolError>
where
    T: Archive,
    T::Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>
        + Deserialize<T, HighDeserializer<rancor::Error>>,
{
    let result = if (meta.as_ptr() as usize).is_multiple_of(16) {
        rkyv::from_bytes::<T, rancor::Error>(meta)
    } else {
        let mut aligned = AlignedVec::<16>::with_capacity(meta.len());
        aligned.extend_from_slice(meta);
        rkyv::from_bytes::<T, rancor::Error>(&aligned)
    };
    result.map_err(|e| ProtocolError::BadArchive(e.to_string()))
}

/// [`split`] then [`decode_meta`], for payloads that carry no data.
pub fn decode<T>(payload: &[u8]) -> Result<T, ProtocolError>
where
    T: Archive,
    T::Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>
        + Deserialize<T, HighDeserializer<rancor::Error>>,
{
    let (meta, data) = split(payload)?;
    if !data.is_empty() {
        return Err(ProtocolError::TrailingBytes(data.len()));
    }
    decode_meta(meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{Pull, TopicInfo, TopicList};

    fn aligned(bytes: &[u8]) -> AlignedVec<16> {
        let mut v = AlignedVec::<16>::new();
        v.extend_from_slice(bytes);
        v
    }

    #[test]
    fn round_trip_with_data() {
        let pull = Pull {
            topic: "t".into(),
            queue_id: 3,
            offset: 7,
            max_messages: 10,
            max_bytes: 1 << 20,
            wait_ms: 5,
            filter: None,
            commit: None,
        };
        let mut payload = encode_prefix(&pull, 5).unwrap();
        payload.extend_from_slice(b"hello");
        let payload = aligned(&payload);
        let (meta, data) = split(&payload).unwrap();
        assert_eq!(data, b"hello");
        assert_eq!(decode_meta::<Pull>(meta).unwrap(), pull);
    }

    #[test]
    fn truncation_at_every_byte_fails() {
        let list = TopicList {
            topics: vec![TopicInfo {
                name: "orders".into(),
                topic_id: 1,
                queues: 8,
                perm: 6,
            }],
        };
        let payload = aligned(&encode(&list).unwrap());
        assert_eq!(decode::<TopicList>(&payload).unwrap(), list);
        for cut in 0..payload.len() {
            let short = aligned(&payload[..cut]);
            assert!(decode::<TopicList>(&short).is_err(), "cut at {cut} decoded");
        }
    }

    #[test]
    fn trailing_and_oversize_are_rejected() {
        let list = TopicList { topics: vec![] };
        let mut payload = encode(&list).unwrap();
        payload.push(0);
        assert!(matches!(
            split(&payload),
            Err(ProtocolError::TrailingBytes(1))
        ));
        let mut oversize = encode(&list).unwrap();
        oversize[0..4].copy_from_slice(&(META_BYTES_MAX + 1).to_le_bytes());
        assert!(matches!(
            split(&oversize),
            Err(ProtocolError::MetaTooLarge { .. })
        ));
    }

    #[test]
    fn oversize_metadata_is_an_encode_error_not_a_panic() {
        let huge = TopicInfo {
            name: "x".repeat(META_BYTES_MAX as usize + 1),
            topic_id: 1,
            queues: 1,
            perm: 6,
        };
        assert!(matches!(
            encode(&huge),
            Err(ProtocolError::MetaTooLarge { .. })
        ));
    }

    #[test]
    fn garbage_metadata_is_an_error_not_a_panic() {
        let mut payload = encode(&TopicList { topics: vec![] }).unwrap();
        for byte in payload.iter_mut().skip(ENVELOPE_PREFIX_BYTES) {
            *byte = 0xAB;
        }
        assert!(decode::<TopicList>(&aligned(&payload)).is_err());
    }
}
