use bytes::Bytes;

use super::*;

fn json_frame(header: &str, body: &[u8]) -> Bytes {
    let mut rest = (header.len() as u32).to_be_bytes().to_vec();
    rest.extend_from_slice(header.as_bytes());
    rest.extend_from_slice(body);
    Bytes::from(rest)
}

#[test]
fn encoded_responses_are_java_shaped() {
    let request = RemotingCommand {
        opaque: 9,
        ..RemotingCommand::request(105, 9)
    };
    let response = RemotingCommand::response_to(&request, 0)
        .with_ext("queueOffset", 12)
        .with_ext("msgId", "ABC")
        .with_body(&b"body"[..]);
    let frame = response.encode().unwrap();
    let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    assert_eq!(len, frame.len() - 4);
    assert_eq!(frame[4], 0, "serialize type JSON");
    let header_len = u32::from_be_bytes(frame[4..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&frame[8..8 + header_len]).unwrap();
    assert_eq!(
        header,
        r#"{"code":0,"extFields":{"msgId":"ABC","queueOffset":"12"},"flag":1,"language":"JAVA","opaque":9,"serializeTypeCurrentRPC":"JSON","version":479}"#
    );
    assert_eq!(&frame[8 + header_len..], b"body");
    let back = decode(Bytes::copy_from_slice(&frame[4..])).unwrap();
    assert_eq!(back.ext["queueOffset"], "12");
    assert!(back.is_response());
    assert_eq!(&back.body[..], b"body");
}

#[test]
fn control_characters_are_escaped_out_and_accepted_raw_in() {
    let response = RemotingCommand::request(310, 1).with_ext("i", "TAGS\u{1}a\u{2}");
    let frame = response.encode().unwrap();
    let text = String::from_utf8_lossy(&frame[8..]).into_owned();
    assert!(text.contains(r"TAGS\u0001a\u0002"), "{text}");
    let raw =
        "{\"code\":310,\"extFields\":{\"i\":\"TAGS\u{1}a\u{2}WAIT\u{1}true\u{2}\"},\n\"opaque\":3}";
    let command = decode(json_frame(raw, b"")).unwrap();
    assert_eq!(command.ext["i"], "TAGS\u{1}a\u{2}WAIT\u{1}true\u{2}");
    assert_eq!(command.opaque, 3);
}

/// Appendix C: what the C++ client and ali-ons really send.
#[test]
fn real_non_java_headers_decode() {
    let cpp = r#"{"code":105,"extFields":{"topic":"TopicTest"},"flag":0,"language":"CPP","opaque":0,"remark":"","version":333}"#;
    let c = decode(json_frame(cpp, b"")).unwrap();
    assert_eq!((c.code, c.version, c.language.as_str()), (105, 333, "CPP"));
    assert_eq!(c.ext["topic"], "TopicTest");
    let ali = r#"{"code":310,"extFields":{"a":"grp","b":"TopicTest","c":"TBW102","d":4,"e":0,"f":0,"g":1795595669319,"h":0,"i":"x","j":0,"k":false},"flag":0,"language":"JAVA","opaque":"7","version":"479"}"#;
    let a = decode(json_frame(ali, b"msg")).unwrap();
    assert_eq!(a.ext["d"], "4");
    assert_eq!(a.ext["g"], "1795595669319");
    assert_eq!(a.ext["k"], "false");
    assert_eq!((a.opaque, a.version), (7, 479), "numbers as strings");
    let minimal = decode(json_frame(
        r#"{"code":34,"language":9,"extFields":null,"remark":null}"#,
        b"",
    ))
    .unwrap();
    assert_eq!(minimal.language, "GO", "a language ordinal");
    assert!(minimal.ext.is_empty() && minimal.remark.is_none());
    let nested = decode(json_frame(
        r#"{"code":1,"extFields":{"n":null,"o":{"x":1}}}"#,
        b"",
    ))
    .unwrap();
    assert_eq!(nested.ext.get("n"), None);
    assert_eq!(nested.ext["o"], r#"{"x":1}"#);
}

#[test]
fn binary_header_from_the_reference_decodes() {
    // §2.3's GET_ROUTEINFO example, without its length prefix.
    let mut rest = vec![0x01, 0x00, 0x00, 0x29];
    rest.extend_from_slice(&[0x00, 0x69, 0x00, 0x01, 0xdf]);
    rest.extend_from_slice(&1i32.to_be_bytes());
    rest.extend_from_slice(&0i32.to_be_bytes());
    rest.extend_from_slice(&0i32.to_be_bytes());
    rest.extend_from_slice(&20i32.to_be_bytes());
    rest.extend_from_slice(&5i16.to_be_bytes());
    rest.extend_from_slice(b"topic");
    rest.extend_from_slice(&9i32.to_be_bytes());
    rest.extend_from_slice(b"TopicTest");
    let command = decode(Bytes::from(rest.clone())).unwrap();
    assert_eq!(
        (command.code, command.opaque, command.version),
        (105, 1, 479)
    );
    assert_eq!(command.language, "JAVA");
    assert_eq!(command.serialize_type, SerializeType::RocketMq);
    assert_eq!(command.ext["topic"], "TopicTest");
    assert!(command.body.is_empty());
    for cut in 4..rest.len() {
        let mut torn = rest[..cut].to_vec();
        torn[1..4].copy_from_slice(&((cut - 4) as u32).to_be_bytes()[1..]);
        assert!(decode(Bytes::from(torn)).is_err(), "cut at {cut}");
    }
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    assert!(frame_length([0xff; 4]).is_err());
    assert!(frame_length([0, 0, 0, 1]).is_err());
    assert!(frame_length([0x01, 0, 0, 0]).is_err(), "16 MiB + 4 is over");
    for bad in [
        &[0u8, 0, 0][..],
        &[0, 0xff, 0xff, 0xff, b'{'],
        &[7, 0, 0, 0],
        &[0, 0, 0, 2, b'{', b'}'],
        &[0, 0, 0, 2, b'[', b']'],
        &[1, 0, 0, 3, 0, 1, 0],
    ] {
        assert!(decode(Bytes::copy_from_slice(bad)).is_err(), "{bad:?}");
    }
    for header in [
        r#"{"code":"x"}"#,
        r#"{"code":99999999999}"#,
        r#"{"code":1,"extFields":[1]}"#,
        r#"{"code":1,"opaque":{}}"#,
    ] {
        assert!(decode(json_frame(header, b"")).is_err(), "{header}");
    }
    let mut seed = 7u64;
    for len in 0..300 {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                (seed >> 56) as u8
            })
            .collect();
        let _ = decode(Bytes::from(bytes));
    }
}

#[test]
fn oversize_encodings_are_refused() {
    let big = RemotingCommand::request(310, 1).with_body(vec![0u8; FRAME_BYTES_MAX]);
    assert!(matches!(big.encode(), Err(RemotingError::TooLarge(_))));
}
