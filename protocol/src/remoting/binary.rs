//! The ROCKETMQ binary header (serialize type 1, §2.3): code i16, language u8, version i16,
//! opaque i32, flag i32, remark (i32 length + UTF-8), extFields (i32 length, then entries of
//! i16 key length + key, i32 value length + value). Decoded only: shardmq always answers JSON,
//! since the C++ client cannot read anything else.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::codes::LANGUAGES;
use super::command::{RemotingCommand, RemotingError, SerializeType};
use super::cursor::Cursor;

pub(crate) fn decode_binary(header: &[u8]) -> Result<RemotingCommand, RemotingError> {
    parse(&mut Cursor::new(header)).map_err(RemotingError::Binary)
}

fn parse(c: &mut Cursor) -> Result<RemotingCommand, &'static str> {
    let code = i32::from(c.i16("code")?);
    let language = LANGUAGES
        .get(usize::from(c.u8("language")?))
        .map_or("OTHER", |l| l)
        .to_owned();
    let version = i32::from(c.i16("version")?);
    let opaque = c.i32("opaque")?;
    let flag = c.i32("flag")?;
    let remark_len = c.i32("remark length")?;
    let remark = (remark_len > 0)
        .then(|| c.sized(i64::from(remark_len), "remark"))
        .transpose()?
        .map(|b| crate::text::bounded(String::from_utf8_lossy(b).into_owned()));
    let ext_len = c.i32("ext length")?;
    let ext_bytes = c.sized(i64::from(ext_len.max(0)), "ext fields")?;
    let mut e = Cursor::new(ext_bytes);
    let mut ext = BTreeMap::new();
    while e.remaining() > 0 {
        let key_len = e.i16("key length")?;
        let key = e.sized(i64::from(key_len), "key")?;
        let value_len = e.i32("value length")?;
        let value = e.sized(i64::from(value_len), "value")?;
        // A zero-length key or value is Java's null: the entry is absent.
        if !key.is_empty() && !value.is_empty() {
            ext.insert(
                String::from_utf8_lossy(key).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            );
        }
    }
    Ok(RemotingCommand {
        code,
        language,
        version,
        opaque,
        flag,
        remark,
        ext,
        body: Bytes::new(),
        serialize_type: SerializeType::RocketMq,
    })
}
