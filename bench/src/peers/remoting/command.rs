//! What the bench's RocketMQ driver needs of the remoting codec in `shardmq_protocol::remoting`
//! (shared with the broker): requests encoded the way the Java client writes them, the
//! SEND_BATCH_MESSAGE body of `count` copies of one payload, and the bodies of the stored
//! messages in a pull response.

use shardmq_protocol::remoting::{batch_body, properties, stored, RemotingCommand};

pub use shardmq_protocol::remoting::codes::request::{
    GET_MAX_OFFSET, GET_MIN_OFFSET, PULL_MESSAGE, SEND_BATCH_MESSAGE, SEND_MESSAGE_V2,
    UPDATE_AND_CREATE_TOPIC,
};
pub use shardmq_protocol::remoting::codes::response::{
    PULL_NOT_FOUND, PULL_OFFSET_MOVED, PULL_RETRY_IMMEDIATELY, SUCCESS, SYSTEM_BUSY,
};
pub use shardmq_protocol::remoting::{decode, frame_length, RemotingCommand as Command};

/// A request frame: JSON header (every extField a string, `serializeTypeCurrentRPC` present,
/// language JAVA, version 5.3.3), then `body`.
pub fn encode_request(
    code: i32,
    opaque: i32,
    ext: &[(&str, String)],
    body: &[u8],
) -> Result<Vec<u8>, String> {
    let mut command = RemotingCommand::request(code, opaque).with_body(body.to_vec());
    for (key, value) in ext {
        command = command.with_ext(key, value);
    }
    if let Some(credentials) = acl_credentials()? {
        sign(&mut command, credentials);
    }
    command.encode().map_err(|e| e.to_string())
}

/// The ACL account of `SHARDMQ_ACCESS_KEY` / `SHARDMQ_SECRET_KEY`, read once.
fn acl_credentials() -> Result<Option<&'static shardmq_client::Credentials>, String> {
    static CREDENTIALS: std::sync::OnceLock<Result<Option<shardmq_client::Credentials>, String>> =
        std::sync::OnceLock::new();
    CREDENTIALS
        .get_or_init(shardmq_client::Credentials::from_env)
        .as_ref()
        .map(Option::as_ref)
        .map_err(Clone::clone)
}

/// Signs `command` as Java's `AclClientRPCHook` does: `AccessKey` added, then `Signature` over
/// the sorted header values and the body.
pub fn sign(command: &mut RemotingCommand, credentials: &shardmq_client::Credentials) {
    use shardmq_protocol::auth::{remoting_signature, ACCESS_KEY, SIGNATURE};
    command
        .ext
        .insert(ACCESS_KEY.into(), credentials.access_key.clone());
    let signature = remoting_signature(
        &credentials.secret_key,
        &command.ext,
        command.version,
        &command.body,
    );
    command.ext.insert(SIGNATURE.into(), signature);
}

/// The SEND_BATCH_MESSAGE body: `count` messages of `payload`, each with `properties`, flag 0.
pub fn batch_body(count: u32, payload: &[u8], properties: &str) -> Vec<u8> {
    let entry = batch_body::ENTRY_FIXED_BYTES + payload.len() + properties.len();
    let mut body = Vec::with_capacity(entry * count as usize);
    for _ in 0..count {
        batch_body::push_entry(&mut body, 0, payload, properties);
    }
    body
}

/// A message's properties string with `TAGS` when tagged.
pub fn tag_properties(tag: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(tag) = tag {
        properties::push(&mut out, properties::key::TAGS, tag);
    }
    out
}

/// Calls `each` with the body of every stored message in a pull response body; returns how
/// many there were.
pub fn for_each_stored_body(buf: &[u8], each: &mut dyn FnMut(&[u8])) -> Result<u64, String> {
    let messages = stored::decode_all(buf).map_err(|e| e.to_string())?;
    for message in &messages {
        each(message.body);
    }
    Ok(messages.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_frame_matches_the_reference_layout() {
        let frame = encode_request(105, 1, &[("topic", "TopicTest".into())], b"").unwrap();
        let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 4);
        assert_eq!(frame[4], 0, "serialize type JSON");
        let command = decode(bytes::Bytes::copy_from_slice(&frame[4..])).unwrap();
        assert_eq!((command.code, command.opaque, command.flag), (105, 1, 0));
        assert_eq!(command.ext["topic"], "TopicTest");
        let header: serde_json::Value = serde_json::from_slice(&frame[8..]).unwrap();
        assert_eq!(header["serializeTypeCurrentRPC"], "JSON");
        assert_eq!(header["version"], 479);
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
