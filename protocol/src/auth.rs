//! Request signatures: what a client computes from its secret key and the broker recomputes to
//! know who is asking. Pure functions over bytes; the broker's ACL (`shardmq::acl`) decides what
//! a known identity may do.
//!
//! - **Remoting** ([`remoting_signature`]): RocketMQ's ACL 1.0 signature, byte for byte as the
//!   Java broker checks it (`PlainAccessValidator.parse` + `AclUtils.combineRequestContent`):
//!   the values of every extFields entry except `Signature`, concatenated in key order, then the
//!   body; HMAC-SHA1 with the secret key; Base64. The client adds `AccessKey` (and the C++
//!   client `OnsChannel`) before signing, so they are part of what is signed. Requests of
//!   clients older than 4.9.4 (`version` ≤ 399) leave `_UNIQUE_KEY_QUERY` out, as Java does.
//!   Key order is Rust's byte order of UTF-8, which equals Java's `TreeMap` order (UTF-16 code
//!   units) for every key below U+E000; RocketMQ's header keys are ASCII.
//! - **Native** ([`hello_signature`]): once per connection, in the `Hello`: HMAC-SHA256 over a
//!   domain tag, the access key, the client name, the client's clock and a client nonce. The
//!   broker refuses a clock more than [`HELLO_CLOCK_SKEW_MS_MAX`] away from its own.
//!
//! - **RocketMQ 5.x gRPC** ([`grpc_authorization`]): every call carries an `authorization`
//!   header `MQv2-HMAC-SHA1 Credential=<access key>, SignedHeaders=x-mq-date-time,
//!   Signature=<S>`, S the upper-case hex HMAC-SHA1 of the `x-mq-date-time` header's value
//!   under the secret key (rocketmq-clients, `nodejs/src/util/index.ts` `sign`; the Java
//!   client's `Signature.sign`).
//!
//! None proves more than knowledge of the secret: someone who can read the traffic can
//! replay a remoting request, or a Hello within the clock window, exactly as with RocketMQ's own
//! ACL. Against that, TLS.

use std::collections::BTreeMap;

use base64::Engine;
use hmac::{Hmac, Mac};

/// The extFields keys RocketMQ's ACL reads.
pub const ACCESS_KEY: &str = "AccessKey";
pub const SIGNATURE: &str = "Signature";
/// Remoting requests from clients at or below this version leave [`UNIQUE_KEY_QUERY`] unsigned.
const VERSION_V4_9_3: i32 = 399;
const UNIQUE_KEY_QUERY: &str = "_UNIQUE_KEY_QUERY";

/// How far a Hello's clock may be from the broker's.
pub const HELLO_CLOCK_SKEW_MS_MAX: u64 = 15 * 60 * 1000;
/// Bytes of a native Hello signature (HMAC-SHA256).
pub const HELLO_SIGNATURE_BYTES: usize = 32;
const HELLO_DOMAIN: &[u8] = b"shardmq-hello-v1";

/// The Base64 HMAC-SHA1 a RocketMQ client puts in `Signature` for a request with these
/// extFields (`Signature` itself, if present, is skipped), this `version` and this body.
pub fn remoting_signature(
    secret_key: &str,
    ext: &BTreeMap<String, String>,
    version: i32,
    body: &[u8],
) -> String {
    let mut mac = <Hmac<sha1::Sha1>>::new_from_slice(secret_key.as_bytes())
        .expect("HMAC takes a key of any length");
    for (key, value) in ext {
        if key == SIGNATURE || (version <= VERSION_V4_9_3 && key == UNIQUE_KEY_QUERY) {
            continue;
        }
        mac.update(value.as_bytes());
    }
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// True when `signature` (as the client sent it) is the request's signature under
/// `secret_key`. Compares in constant time.
pub fn remoting_signature_matches(
    secret_key: &str,
    ext: &BTreeMap<String, String>,
    version: i32,
    body: &[u8],
    signature: &str,
) -> bool {
    let expected = remoting_signature(secret_key, ext, version, body);
    constant_time_eq(expected.as_bytes(), signature.trim().as_bytes())
}

/// The HMAC-SHA256 a native client puts in its `Hello`.
pub fn hello_signature(
    secret_key: &str,
    access_key: &str,
    client_name: &str,
    timestamp_ms: u64,
    nonce: u64,
) -> [u8; HELLO_SIGNATURE_BYTES] {
    let mut mac = <Hmac<sha2::Sha256>>::new_from_slice(secret_key.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(HELLO_DOMAIN);
    for part in [access_key.as_bytes(), client_name.as_bytes()] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac.update(&timestamp_ms.to_be_bytes());
    mac.update(&nonce.to_be_bytes());
    mac.finalize().into_bytes().into()
}

/// The `authorization` scheme of the 5.x clients.
pub const GRPC_AUTH_SCHEME: &str = "MQv2-HMAC-SHA1";

/// What a 5.x `authorization` header names: the access key and the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcAuthorization<'a> {
    pub access_key: &'a str,
    pub signature: &'a str,
}

/// Reads an `authorization` header; `None` when it is not the 5.x scheme or lacks a part.
pub fn grpc_authorization(header: &str) -> Option<GrpcAuthorization<'_>> {
    let rest = header.trim().strip_prefix(GRPC_AUTH_SCHEME)?;
    let (mut access_key, mut signature) = (None, None);
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("Credential", value)) => access_key = Some(value.trim()),
            Some(("Signature", value)) => signature = Some(value.trim()),
            _ => {}
        }
    }
    Some(GrpcAuthorization {
        access_key: access_key.filter(|k| !k.is_empty())?,
        signature: signature?,
    })
}

/// The signature a 5.x client sends for the `x-mq-date-time` value `date_time`.
pub fn grpc_signature(secret_key: &str, date_time: &str) -> String {
    let mut mac = <Hmac<sha1::Sha1>>::new_from_slice(secret_key.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(date_time.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// True when `signature` is `date_time`'s under `secret_key` (any hex case; constant time).
pub fn grpc_signature_matches(secret_key: &str, date_time: &str, signature: &str) -> bool {
    let expected = grpc_signature(secret_key, date_time);
    constant_time_eq(
        expected.as_bytes(),
        signature.to_ascii_uppercase().as_bytes(),
    )
}

/// This machine's clock in ms since the Unix epoch (a Hello's `timestamp_ms`, the broker's
/// view of it); 0 for a clock before 1970.
pub fn unix_time_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Byte equality whose time does not depend on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A vector computed outside this code, with Python's `hmac` over Java's concatenation:
    /// `base64(hmac.new(b"12345678", b"RocketMQ" + b"ALIYUN" + b"TopicTest" + b"hello",
    /// sha1).digest())`, keys in order AccessKey, OnsChannel, topic.
    /// A vector computed outside this code: `hmac.new(b"secret", b"20261204T101010Z",
    /// sha1).hexdigest().upper()` in Python.
    #[test]
    fn the_grpc_signature_is_the_clients() {
        let header = "MQv2-HMAC-SHA1 Credential=ak, SignedHeaders=x-mq-date-time, Signature=ABC";
        assert_eq!(
            grpc_authorization(header),
            Some(GrpcAuthorization {
                access_key: "ak",
                signature: "ABC"
            })
        );
        assert_eq!(grpc_authorization("Bearer x"), None);
        assert_eq!(grpc_authorization("MQv2-HMAC-SHA1 Credential=ak"), None);
        let expected = "80E61B8D43567D46D6F652CB01C005A634A027DA";
        assert_eq!(grpc_signature("secret", "20261204T101010Z"), expected);
        assert!(grpc_signature_matches(
            "secret",
            "20261204T101010Z",
            &expected.to_lowercase()
        ));
        assert!(!grpc_signature_matches(
            "other",
            "20261204T101010Z",
            expected
        ));
    }

    #[test]
    fn the_remoting_signature_is_javas() {
        let fields = ext(&[
            ("topic", "TopicTest"),
            ("AccessKey", "RocketMQ"),
            ("OnsChannel", "ALIYUN"),
            ("Signature", "ignored"),
        ]);
        let signature = remoting_signature("12345678", &fields, 401, b"hello");
        assert_eq!(signature, "v2Z0qaszqhx2kHiKv9bhajWgSGc=");
        assert!(remoting_signature_matches(
            "12345678", &fields, 401, b"hello", &signature
        ));
        assert!(!remoting_signature_matches(
            "12345679", &fields, 401, b"hello", &signature
        ));
        assert!(!remoting_signature_matches(
            "12345678", &fields, 401, b"hellO", &signature
        ));
    }

    #[test]
    fn old_clients_leave_the_unique_key_flag_unsigned() {
        let plain = ext(&[("AccessKey", "ak"), ("topic", "t")]);
        let mut flagged = plain.clone();
        flagged.insert(UNIQUE_KEY_QUERY.into(), "true".into());
        let old = remoting_signature("sk", &plain, 399, b"");
        assert_eq!(remoting_signature("sk", &flagged, 399, b""), old);
        assert_ne!(remoting_signature("sk", &flagged, 401, b""), old);
    }

    #[test]
    fn every_hello_field_is_signed() {
        let base = hello_signature("sk", "ak", "client", 1, 2);
        assert_ne!(hello_signature("sk2", "ak", "client", 1, 2), base);
        assert_ne!(hello_signature("sk", "ak2", "client", 1, 2), base);
        assert_ne!(hello_signature("sk", "ak", "client2", 1, 2), base);
        assert_ne!(hello_signature("sk", "ak", "client", 3, 2), base);
        assert_ne!(hello_signature("sk", "ak", "client", 1, 3), base);
        // Lengths are framed: moving a byte from one field to the next changes the signature.
        assert_ne!(hello_signature("sk", "akc", "lient", 1, 2), base);
    }
}
