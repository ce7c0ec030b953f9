//! [`RemotingCommand`]: one remoting frame, decoded liberally and encoded strictly
//! (`../shared/reference/rocketmq-protocol.md` §2, appendices B and C).
//!
//! Frame: `[i32 length L][u8 serialize type][u24 header length][header][body]`, L counting
//! everything after itself. Limits: 4 + L ≤ [`FRAME_BYTES_MAX`] (Java's 16 MiB); the header
//! length must fit inside L. A violation is a [`RemotingError`], never a panic, and nothing is
//! allocated from a length before it was checked against the bytes at hand.
//!
//! Decoding is what fastjson tolerates (appendix C): a JSON header may omit anything but `code`
//! (`opaque`, `flag`, `version` default to 0, `language` to OTHER); any scalar stands for a number
//! or a string (`"12"` for 12, `12` for `"12"`, `true` for `"true"`); `language` may be a name
//! or an ordinal; extFields values may be any JSON value (non-strings keep their JSON text, a
//! null drops the key); raw control characters inside strings (property separators 0x01/0x02)
//! are accepted as if escaped. The binary ROCKETMQ header (type 1) is decoded too.
//!
//! Encoding is what Java writes (appendix B): JSON, type byte 0, keys in alphabetical order,
//! every extFields value a string, `serializeTypeCurrentRPC` present, control characters escaped.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::codes::{command_flag, LANGUAGES, RESPONSE_LANGUAGE};

/// Java's frame limit: the 4-byte length prefix plus everything it counts.
pub const FRAME_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Bytes before the header: length prefix and the type/header-length word.
pub const FRAME_PREFIX_BYTES: usize = 8;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RemotingError {
    #[error("frame length {0} outside 4..={max}", max = FRAME_BYTES_MAX - 4)]
    FrameLength(usize),
    #[error("header length {header} does not fit a frame of {frame} bytes")]
    HeaderLength { header: usize, frame: usize },
    #[error("bad JSON header: {0}")]
    Json(String),
    #[error("bad binary header: {0}")]
    Binary(&'static str),
    #[error("serialize type {0} is neither JSON (0) nor ROCKETMQ (1)")]
    SerializeType(u8),
    #[error("encoded frame of {0} bytes exceeds {FRAME_BYTES_MAX}")]
    TooLarge(usize),
}

/// How a frame's header was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SerializeType {
    #[default]
    Json,
    RocketMq,
}

/// One request or response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemotingCommand {
    pub code: i32,
    /// The sender's `LanguageCode` name.
    pub language: String,
    pub version: i32,
    pub opaque: i32,
    pub flag: i32,
    pub remark: Option<String>,
    pub ext: BTreeMap<String, String>,
    pub body: Bytes,
    /// How the header arrived (responses are always encoded as JSON).
    pub serialize_type: SerializeType,
}

impl RemotingCommand {
    /// A response to `request` with `code`, echoing its opaque.
    pub fn response_to(request: &RemotingCommand, code: i32) -> RemotingCommand {
        RemotingCommand {
            code,
            language: RESPONSE_LANGUAGE.to_owned(),
            version: super::codes::version::SHARDMQ,
            opaque: request.opaque,
            flag: command_flag::RESPONSE,
            ..RemotingCommand::default()
        }
    }

    /// A request the broker sends (e.g. NOTIFY_CONSUMER_IDS_CHANGED), or a client sends.
    pub fn request(code: i32, opaque: i32) -> RemotingCommand {
        RemotingCommand {
            code,
            language: RESPONSE_LANGUAGE.to_owned(),
            version: super::codes::version::SHARDMQ,
            opaque,
            ..RemotingCommand::default()
        }
    }

    pub fn with_remark(mut self, remark: impl Into<String>) -> RemotingCommand {
        self.remark = Some(crate::text::bounded(remark.into()));
        self
    }

    pub fn with_ext(mut self, key: &str, value: impl ToString) -> RemotingCommand {
        self.ext.insert(key.to_owned(), value.to_string());
        self
    }

    pub fn with_body(mut self, body: impl Into<Bytes>) -> RemotingCommand {
        self.body = body.into();
        self
    }

    pub fn is_response(&self) -> bool {
        self.flag & command_flag::RESPONSE != 0
    }

    pub fn is_oneway(&self) -> bool {
        self.flag & command_flag::ONEWAY != 0
    }

    /// An extField parsed as a number (the bench's responses).
    pub fn ext_i64(&self, key: &str) -> Option<i64> {
        self.ext.get(key)?.trim().parse().ok()
    }

    /// The whole frame, length prefix included, with a JSON header.
    pub fn encode(&self) -> Result<Vec<u8>, RemotingError> {
        let header = self.json_header();
        let total = FRAME_PREFIX_BYTES + header.len() + self.body.len();
        if total > FRAME_BYTES_MAX || header.len() > 0x00FF_FFFF {
            return Err(RemotingError::TooLarge(total));
        }
        let mut frame = Vec::with_capacity(total);
        frame.extend_from_slice(&((total - 4) as u32).to_be_bytes());
        frame.extend_from_slice(&(header.len() as u32).to_be_bytes());
        frame.extend_from_slice(header.as_bytes());
        frame.extend_from_slice(&self.body);
        Ok(frame)
    }

    fn json_header(&self) -> String {
        // serde_json's map is ordered by key: the alphabetical order fastjson writes.
        let mut map = Map::new();
        map.insert("code".into(), Value::from(self.code));
        let ext: Map<String, Value> = self
            .ext
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        map.insert("extFields".into(), Value::Object(ext));
        map.insert("flag".into(), Value::from(self.flag));
        let language = if self.language.is_empty() {
            RESPONSE_LANGUAGE
        } else {
            &self.language
        };
        map.insert("language".into(), Value::from(language));
        map.insert("opaque".into(), Value::from(self.opaque));
        if let Some(remark) = &self.remark {
            map.insert("remark".into(), Value::from(remark.as_str()));
        }
        map.insert("serializeTypeCurrentRPC".into(), Value::from("JSON"));
        map.insert("version".into(), Value::from(self.version));
        Value::Object(map).to_string()
    }
}

/// The length the 4-byte prefix announces for the rest of the frame, checked against the limit.
pub fn frame_length(prefix: [u8; 4]) -> Result<usize, RemotingError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if !(4..=FRAME_BYTES_MAX - 4).contains(&len) {
        return Err(RemotingError::FrameLength(len));
    }
    Ok(len)
}

/// Decodes a frame without its length prefix (`rest`: the type/header-length word, the header,
/// the body). The body is a slice of `rest`, not a copy.
pub fn decode(rest: Bytes) -> Result<RemotingCommand, RemotingError> {
    let word: [u8; 4] = rest
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(RemotingError::FrameLength(rest.len()))?;
    let header_len = (u32::from_be_bytes(word) & 0x00FF_FFFF) as usize;
    let header_end = 4usize.saturating_add(header_len);
    let header = rest.get(4..header_end).ok_or(RemotingError::HeaderLength {
        header: header_len,
        frame: rest.len(),
    })?;
    let mut command = match word[0] {
        0 => decode_json(header)?,
        1 => super::binary::decode_binary(header)?,
        // The C++ client reads the type byte as part of the length, so a sender may also put a
        // header length above 16 MiB there; both are refused the same way.
        other => return Err(RemotingError::SerializeType(other)),
    };
    command.body = rest.slice(header_end..);
    Ok(command)
}

fn decode_json(header: &[u8]) -> Result<RemotingCommand, RemotingError> {
    let value: Value = match serde_json::from_slice(header) {
        Ok(value) => value,
        Err(first) => serde_json::from_slice(&escape_raw_controls(header))
            .map_err(|_| RemotingError::Json(crate::text::bounded(first.to_string())))?,
    };
    let Value::Object(fields) = value else {
        return Err(RemotingError::Json(
            "the header is not a JSON object".into(),
        ));
    };
    let number = |key: &str| -> Result<i32, RemotingError> {
        match fields.get(key) {
            None | Some(Value::Null) => Ok(0),
            Some(v) => scalar_i32(v).ok_or_else(|| {
                RemotingError::Json(format!("{key} is not a 32-bit number: {}", shown(v)))
            }),
        }
    };
    if fields.get("code").is_none_or(Value::is_null) {
        return Err(RemotingError::Json("the header has no code".into()));
    }
    let ext = match fields.get("extFields") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(ext)) => ext
            .iter()
            .filter_map(|(k, v)| scalar_text(v).map(|text| (k.clone(), text)))
            .collect(),
        Some(other) => {
            return Err(RemotingError::Json(format!(
                "extFields is not an object: {}",
                shown(other)
            )))
        }
    };
    Ok(RemotingCommand {
        code: number("code")?,
        language: language_of(fields.get("language")),
        version: number("version")?,
        opaque: number("opaque")?,
        flag: number("flag")?,
        remark: fields.get("remark").and_then(scalar_text),
        ext,
        body: Bytes::new(),
        serialize_type: SerializeType::Json,
    })
}

/// A JSON value as the string a Java field would hold: strings as they are, other scalars as
/// their JSON text, objects and arrays as JSON; `None` for null.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn scalar_i32(value: &Value) -> Option<i32> {
    match value {
        Value::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn language_of(value: Option<&Value>) -> String {
    let other = "OTHER".to_owned();
    match value {
        Some(Value::String(name)) if !name.is_empty() => crate::text::bounded(name.clone()),
        Some(v) => scalar_i32(v)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| LANGUAGES.get(i))
            .map_or(other, |name| (*name).to_owned()),
        None => other,
    }
}

fn shown(value: &Value) -> String {
    let text = value.to_string();
    crate::text::Shown(&text).to_string()
}

/// `header` with control bytes inside JSON strings escaped as `\u00XX` (senders that put the
/// raw 0x01/0x02 property separators into strings), structure untouched.
fn escape_raw_controls(header: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len() + 16);
    let (mut in_string, mut escaped) = (false, false);
    for &b in header {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            } else if b < 0x20 {
                out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
                continue;
            }
        } else if b == b'"' {
            in_string = true;
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
#[path = "command_tests.rs"]
mod tests;
