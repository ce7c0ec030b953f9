//! Apache Iggy's TCP protocol as the server at cc269ef speaks it (0.11.x, VSR-framed): the
//! 256-byte request and reply headers, the login (`Register`), stream and topic creation, a send
//! of one batch to one partition and a poll by offset. Only what the bench uses; little-endian
//! throughout. Layouts follow Iggy's `core/consensus/src/header.rs`,
//! `core/binary_protocol/src/requests/**` and `core/common/src/types/message/batch.rs`.
//!
//! Checksums: a send carries an XXH3-64 per message (over the frame after its checksum field) and
//! one per batch (over the batch header fields and the message checksums); the server refuses a
//! batch whose sums are wrong. Request checksums are 0 (unchecked).

use xxhash_rust::xxh3::xxh3_64;

pub const HEADER_BYTES: usize = 256;
/// The largest frame the server sends or takes (its `max_frame` default, 64 MiB): a reply
/// header announcing more is refused before anything is allocated for it.
pub const FRAME_BYTES_MAX: usize = 64 << 20;
/// 0.11.0, packed `major << 20 | minor << 10 | patch`: what this server accepts.
pub const PROTOCOL_VERSION: u32 = 11 << 10;

pub const OP_REGISTER: u8 = 1;
pub const OP_NON_REPLICATED: u8 = 2;
pub const OP_CREATE_STREAM: u8 = 128;
pub const OP_CREATE_TOPIC: u8 = 132;
pub const OP_SEND_MESSAGES: u8 = 160;
/// Legacy command code of a poll, carried in a non-replicated request's header.
pub const CODE_POLL_MESSAGES: u32 = 100;

const COMMAND_REQUEST: u8 = 5;
const COMMAND_EVICTION: u8 = 13;

pub const STREAM_EXISTS: u32 = 1012;
pub const TOPIC_EXISTS: u32 = 2013;
/// The partition is not routable yet right after its topic was created: retry.
pub const TRANSIENT_NOT_ACCEPTED: u32 = 58;

const BATCH_HEADER_BYTES: usize = 256;
const MESSAGE_HEADER_BYTES: usize = 48;

/// Who sends a request: the connection's client id and session, and the request number.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub client: u128,
    pub session: u64,
    pub request: u64,
}

/// A request header followed by `body`.
pub fn request(route: Route, operation: u8, legacy_code: u32, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_BYTES];
    out[48..52].copy_from_slice(&((HEADER_BYTES + body.len()) as u32).to_le_bytes());
    out[60] = COMMAND_REQUEST;
    out[128..144].copy_from_slice(&route.client.to_le_bytes());
    out[168..176].copy_from_slice(&route.request.to_le_bytes());
    out[176] = operation;
    out[184..192].copy_from_slice(&route.session.to_le_bytes());
    if operation == OP_NON_REPLICATED {
        out[196..200].copy_from_slice(&legacy_code.to_le_bytes());
    }
    out.extend_from_slice(body);
    out
}

/// What a reply header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyHead {
    /// A reply whose whole frame (header included) is `size` bytes, with `status` (0: ok).
    Reply { size: usize, status: u32 },
    /// The server ended the session (reason code).
    Evicted { reason: u8 },
}

pub fn reply_head(header: &[u8; HEADER_BYTES]) -> Result<ReplyHead, String> {
    if header[60] == COMMAND_EVICTION {
        return Ok(ReplyHead::Evicted {
            reason: header[255],
        });
    }
    let size = u32_at(header, 48) as usize;
    if !(HEADER_BYTES..=FRAME_BYTES_MAX).contains(&size) {
        return Err(format!(
            "reply size {size} is outside [{HEADER_BYTES}, {FRAME_BYTES_MAX}]"
        ));
    }
    Ok(ReplyHead::Reply {
        size,
        status: u32_at(header, 216),
    })
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

fn short_string(out: &mut Vec<u8>, s: &str) {
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

/// An identifier by name (`kind 2`), as streams and topics are addressed here.
pub fn name_id(out: &mut Vec<u8>, name: &str) {
    out.push(2);
    short_string(out, name);
}

pub fn register_body(username: &str, password: &str) -> Vec<u8> {
    let mut out = PROTOCOL_VERSION.to_le_bytes().to_vec();
    short_string(&mut out, "shardmq-bench");
    short_string(&mut out, env!("CARGO_PKG_VERSION"));
    short_string(&mut out, username);
    short_string(&mut out, password);
    out.extend_from_slice(&0u32.to_le_bytes());
    out
}

/// The session a successful register reply's body carries.
pub fn session_of_register(body: &[u8]) -> Result<u64, String> {
    result_code(body)?.map_or(Ok(()), |code| Err(format!("login refused: code {code}")))?;
    (body.len() >= 16)
        .then(|| u64_at(body, 8))
        .ok_or_else(|| "short register reply".to_string())
}

/// A metadata reply's result section: `None` when it succeeded, else the error code.
pub fn result_code(body: &[u8]) -> Result<Option<u32>, String> {
    if body.len() < 4 {
        return Err("reply without a result section".into());
    }
    match u32_at(body, 0) {
        0 => Ok(None),
        _ if body.len() >= 12 => Ok(Some(u32_at(body, 8))),
        _ => Err("short result section".into()),
    }
}

pub fn create_stream_body(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    short_string(&mut out, name);
    out
}

/// A topic of `partitions`; `durable`: fsync each batch before its acknowledgement
/// (`enforce_fsync` and `messages_required_to_save = 1`), else Iggy's defaults (acknowledged
/// from memory, written every 1024 messages or 1 MiB).
pub fn create_topic_body(stream: &str, name: &str, partitions: u32, durable: bool) -> Vec<u8> {
    let mut out = Vec::new();
    name_id(&mut out, stream);
    out.extend_from_slice(&partitions.to_le_bytes());
    short_string(&mut out, name);
    if durable {
        option(&mut out, "enforce_fsync", 3, &[1]);
        option(
            &mut out,
            "messages_required_to_save",
            11,
            &1u32.to_le_bytes(),
        );
    }
    out
}

fn option(out: &mut Vec<u8>, key: &str, value_kind: u8, value: &[u8]) {
    out.push(2);
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.push(value_kind);
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}

/// The routing part of a send to `partition` of `stream`/`topic`, then a batch of `count`
/// messages each carrying `payload`, with ids from `first_id` and timestamps `now_us`.
pub fn send_body(
    stream: &str,
    topic: &str,
    partition: u32,
    count: u32,
    payload: &[u8],
    first_id: u128,
    now_us: u64,
) -> Vec<u8> {
    let mut meta = Vec::new();
    name_id(&mut meta, stream);
    name_id(&mut meta, topic);
    meta.extend_from_slice(&[2, 4]);
    meta.extend_from_slice(&partition.to_le_bytes());
    meta.extend_from_slice(&count.to_le_bytes());
    let frame_bytes = MESSAGE_HEADER_BYTES + payload.len();
    let batch_length = BATCH_HEADER_BYTES + frame_bytes * count as usize;
    let mut out = Vec::with_capacity(4 + meta.len() + batch_length);
    out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    out.extend_from_slice(&meta);
    let batch_at = out.len();
    out.resize(batch_at + BATCH_HEADER_BYTES, 0);
    let mut sums = Vec::with_capacity(8 * count as usize);
    for i in 0..count {
        let at = out.len();
        out.resize(at + MESSAGE_HEADER_BYTES, 0);
        out[at + 8..at + 24].copy_from_slice(&(first_id + u128::from(i)).to_le_bytes());
        out[at + 24..at + 28].copy_from_slice(&i.to_le_bytes());
        out[at + 36..at + 40].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(payload);
        let sum = xxh3_64(&out[at + 8..]);
        out[at..at + 8].copy_from_slice(&sum.to_le_bytes());
        sums.extend_from_slice(&sum.to_le_bytes());
    }
    let header = &mut out[batch_at..batch_at + BATCH_HEADER_BYTES];
    header[24..32].copy_from_slice(&now_us.to_le_bytes());
    header[32..40].copy_from_slice(&(batch_length as u64).to_le_bytes());
    header[48..52].copy_from_slice(&count.to_le_bytes());
    let mut summed = Vec::with_capacity(44 + sums.len());
    summed.extend_from_slice(&header[0..40]);
    summed.extend_from_slice(&count.to_le_bytes());
    summed.extend_from_slice(&sums);
    header[40..48].copy_from_slice(&xxh3_64(&summed).to_le_bytes());
    out
}

/// A poll of up to `count` messages of `partition` from `offset`, as consumer 1.
pub fn poll_body(stream: &str, topic: &str, partition: u32, offset: u64, count: u32) -> Vec<u8> {
    let mut out = vec![1, 1, 4];
    out.extend_from_slice(&1u32.to_le_bytes());
    name_id(&mut out, stream);
    name_id(&mut out, topic);
    out.push(1);
    out.extend_from_slice(&partition.to_le_bytes());
    out.push(1);
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.push(0);
    out
}

/// Calls `each` with every message payload of a poll reply; returns how many there were and the
/// offset after the last.
pub fn poll_messages(
    body: &[u8],
    from: u64,
    each: &mut dyn FnMut(&[u8]),
) -> Result<(u64, u64), String> {
    if body.len() < 16 {
        return Err(format!("poll reply of {} bytes", body.len()));
    }
    let mut at = 16;
    let (mut count, mut next) = (0, from);
    while at < body.len() {
        let batch = body
            .get(at..at + BATCH_HEADER_BYTES)
            .ok_or("torn batch header")?;
        let (base, length) = (u64_at(batch, 8), u64_at(batch, 32) as usize);
        let end = at
            .checked_add(length)
            .filter(|e| *e <= body.len() && length >= BATCH_HEADER_BYTES)
            .ok_or("batch length past the reply")?;
        let mut frame = at + BATCH_HEADER_BYTES;
        while frame < end {
            let head = body
                .get(frame..frame + MESSAGE_HEADER_BYTES)
                .ok_or("torn message header")?;
            let delta = u64::from(u32_at(head, 24));
            let (headers, len) = (u32_at(head, 32) as usize, u32_at(head, 36) as usize);
            let payload_at = frame + MESSAGE_HEADER_BYTES;
            let payload = body
                .get(payload_at..payload_at + len)
                .ok_or("payload past the batch")?;
            if base + delta >= from {
                each(payload);
                count += 1;
                next = base + delta + 1;
            }
            frame = payload_at + len + headers;
        }
        at = end;
    }
    Ok((count, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sent_batch_reads_back_as_a_poll_reply_would_carry_it() {
        let body = send_body("s", "t", 3, 3, b"abc", 7, 1_000);
        let meta_len = u32_at(&body, 0) as usize;
        assert_eq!(
            meta_len,
            3 + 3 + 6 + 4,
            "stream, topic, partitioning, count"
        );
        let batch = &body[4 + meta_len..];
        assert_eq!(u64_at(batch, 32) as usize, batch.len());
        assert_eq!(u32_at(batch, 48), 3);
        let first = &batch[BATCH_HEADER_BYTES..];
        assert_eq!(
            u64_at(first, 0),
            xxh3_64(&first[8..MESSAGE_HEADER_BYTES + 3])
        );
        // A poll reply: 16-byte head, then the stored batch (base offset 10).
        let mut reply = vec![0u8; 16];
        reply.extend_from_slice(batch);
        reply[16 + 8..16 + 16].copy_from_slice(&10u64.to_le_bytes());
        let mut seen = Vec::new();
        let (n, next) = poll_messages(&reply, 11, &mut |p| seen.push(p.to_vec())).unwrap();
        assert_eq!(
            (n, next),
            (2, 13),
            "offsets below the one asked for are skipped"
        );
        assert_eq!(seen, vec![b"abc".to_vec(), b"abc".to_vec()]);
        reply.truncate(reply.len() - 1);
        assert!(poll_messages(&reply, 0, &mut |_| {}).is_err());
    }

    #[test]
    fn headers_carry_size_operation_session_and_legacy_code() {
        let route = Route {
            client: 9,
            session: 5,
            request: 2,
        };
        let r = request(route, OP_NON_REPLICATED, CODE_POLL_MESSAGES, b"xy");
        assert_eq!((r.len(), u32_at(&r, 48)), (258, 258));
        assert_eq!((r[60], r[176], u64_at(&r, 184)), (5, 2, 5));
        assert_eq!(u32_at(&r, 196), 100);
        let mut head = [0u8; HEADER_BYTES];
        head[60] = COMMAND_EVICTION;
        head[255] = 9;
        assert_eq!(reply_head(&head), Ok(ReplyHead::Evicted { reason: 9 }));
        let mut huge = [0u8; HEADER_BYTES];
        huge[48..52].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(
            reply_head(&huge).is_err(),
            "a 4 GiB reply is refused, not allocated"
        );
    }
}
