//! The SEND_BATCH_MESSAGE body (§5.6): per message, total size i32 (itself included) | magic
//! i32 (0 from clients) | body CRC i32 (0) | flag i32 | body (i32 length + bytes) | properties
//! (i16 length + UTF-8). Each inner message carries its own properties, UNIQ_KEY included; the
//! broker stores those and never lets the batch header's properties override them.

use super::cursor::Cursor;

/// Bytes of an entry around its body and properties.
pub const ENTRY_FIXED_BYTES: usize = 22;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchEntry<'a> {
    pub flag: i32,
    pub body: &'a [u8],
    pub properties: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchBodyError {
    #[error("batch entry {index}: {why}")]
    Entry { index: usize, why: &'static str },
    #[error("the batch body holds no message")]
    Empty,
}

fn entry<'a>(c: &mut Cursor<'a>) -> Result<BatchEntry<'a>, &'static str> {
    let start = c.position();
    let total = c.i32("total size")?;
    c.take(8, "magic and crc")?;
    let flag = c.i32("flag")?;
    let body_len = c.i32("body length")?;
    let body = c.sized(i64::from(body_len), "body")?;
    let properties_len = c.i16("properties length")?;
    let properties = c.sized(i64::from(properties_len), "properties")?;
    let properties = std::str::from_utf8(properties).map_err(|_| "properties are not UTF-8")?;
    if usize::try_from(total).ok() != Some(c.position() - start) {
        return Err("total size disagrees with the fields");
    }
    Ok(BatchEntry {
        flag,
        body,
        properties,
    })
}

/// The messages of a batch body, in order. At most `max_messages` (more is an error).
pub fn decode(body: &[u8], max_messages: usize) -> Result<Vec<BatchEntry<'_>>, BatchBodyError> {
    let mut c = Cursor::new(body);
    let mut out = Vec::new();
    while c.remaining() > 0 {
        let index = out.len();
        if index == max_messages {
            return Err(BatchBodyError::Entry {
                index,
                why: "more messages than a batch may hold",
            });
        }
        out.push(entry(&mut c).map_err(|why| BatchBodyError::Entry { index, why })?);
    }
    if out.is_empty() {
        return Err(BatchBodyError::Empty);
    }
    Ok(out)
}

/// Appends one entry (the bench's and tests' batches).
pub fn push_entry(out: &mut Vec<u8>, flag: i32, body: &[u8], properties: &str) {
    let total = ENTRY_FIXED_BYTES + body.len() + properties.len();
    out.extend_from_slice(&(total as i32).to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes()); // magic: written as 0 by clients
    out.extend_from_slice(&0i32.to_be_bytes()); // body CRC: the broker computes it
    out.extend_from_slice(&flag.to_be_bytes());
    out.extend_from_slice(&(body.len() as i32).to_be_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&(properties.len() as i16).to_be_bytes());
    out.extend_from_slice(properties.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_truncation_fails() {
        let mut body = Vec::new();
        push_entry(&mut body, 1, b"abc", "TAGS\u{1}A\u{2}");
        push_entry(&mut body, 2, b"", "");
        let entries = decode(&body, 10).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0],
            BatchEntry {
                flag: 1,
                body: b"abc",
                properties: "TAGS\u{1}A\u{2}"
            }
        );
        assert_eq!(entries[1].body, b"");
        for cut in 1..body.len() {
            if cut == ENTRY_FIXED_BYTES + 3 + 7 {
                continue; // exactly the first entry: a valid batch of one
            }
            assert!(decode(&body[..cut], 10).is_err(), "cut at {cut}");
        }
        assert_eq!(decode(&[], 10), Err(BatchBodyError::Empty));
        assert!(decode(&body, 1).is_err(), "over the message bound");
    }
}
