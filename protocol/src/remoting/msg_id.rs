//! The offset message id (§5.5): store host address, port (i32) and commit-log offset (i64),
//! big-endian, as uppercase hex — 32 characters for IPv4, 56 for IPv6. Clients send it back
//! (VIEW_MESSAGE_BY_ID) to the address it names, with the offset.

use std::net::{IpAddr, SocketAddr};

pub fn offset_msg_id(store_host: SocketAddr, physical_offset: i64) -> String {
    let mut out = String::with_capacity(56);
    push_offset_msg_id(&mut out, store_host, physical_offset);
    out
}

/// Appends the offset message id to `out` (a batch's ids are joined into one string; this is
/// on the send path, once per message, so it formats without allocating).
pub fn push_offset_msg_id(out: &mut String, store_host: SocketAddr, physical_offset: i64) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut push = |bytes: &[u8]| {
        for &b in bytes {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xF)]));
        }
    };
    match store_host.ip() {
        IpAddr::V4(ip) => push(&ip.octets()),
        IpAddr::V6(ip) => push(&ip.octets()),
    }
    push(&i32::from(store_host.port()).to_be_bytes());
    push(&physical_offset.to_be_bytes());
}

/// The host and commit-log offset an offset message id names; `None` if it is not one.
pub fn parse_offset_msg_id(id: &str) -> Option<(SocketAddr, i64)> {
    if !id.is_ascii() || !matches!(id.len(), 32 | 56) {
        return None;
    }
    let bytes: Vec<u8> = (0..id.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&id[i..i + 2], 16).ok())
        .collect::<Option<_>>()?;
    let (ip, rest) = if bytes.len() == 16 {
        let octets: [u8; 4] = bytes[..4].try_into().ok()?;
        (IpAddr::from(octets), &bytes[4..])
    } else {
        let octets: [u8; 16] = bytes[..16].try_into().ok()?;
        (IpAddr::from(octets), &bytes[16..])
    };
    let port = i32::from_be_bytes(rest[..4].try_into().ok()?);
    let offset = i64::from_be_bytes(rest[4..12].try_into().ok()?);
    Some((SocketAddr::new(ip, u16::try_from(port).ok()?), offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        let host: SocketAddr = "10.0.0.1:10911".parse().unwrap();
        let id = offset_msg_id(host, 0x1234);
        assert_eq!(id, "0A00000100002A9F0000000000001234");
        assert_eq!(parse_offset_msg_id(&id), Some((host, 0x1234)));
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        let id6 = offset_msg_id(v6, 7);
        assert_eq!(id6.len(), 56);
        assert_eq!(parse_offset_msg_id(&id6), Some((v6, 7)));
        for bad in [
            "",
            "zz",
            "0A00000100002A9F000000000000123",
            "é0000100002A9F00000000000012345",
        ] {
            assert_eq!(parse_offset_msg_id(bad), None, "{bad}");
        }
    }
}
