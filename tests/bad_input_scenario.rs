//! Garbage, a batch with a wrong CRC and an oversize length prefix each get a clean error while
//! a second client keeps being served and nothing acknowledged is lost.

mod harness;

use std::io::Write;

use harness::{create_topic, data_dir, record, run, Broker, RawConnection};
use shardmq_client::Client;
use shardmq_protocol::batch::encode_batch;
use shardmq_protocol::envelope;
use shardmq_protocol::limits::FRAME_PAYLOAD_BYTES_MAX;
use shardmq_protocol::messages::Produce;
use shardmq_protocol::routing::shard_for_queue;
use shardmq_protocol::{ErrorCode, FrameKind};

/// A second client produces and reads back; proves the broker still serves others.
fn healthy_round_trip(addr: &str, round: u64) {
    let addr = addr.to_string();
    run(move || async move {
        let client = Client::connect(&addr, "healthy").await.unwrap();
        let ack = client
            .produce_batch("t", 0, &encode_batch(&[record(round)]))
            .await
            .unwrap();
        assert_eq!(ack.base_offset, round);
        let pulled = client.pull("t", 0, 0, 1000, 1 << 20, 0).await.unwrap();
        let records = pulled.to_owned_records().unwrap();
        assert_eq!(
            records.len() as u64,
            round + 1,
            "every acked message is still there"
        );
        for (offset, rec) in records {
            assert_eq!(rec.payload, record(offset).payload);
        }
    });
}

#[test]
fn bad_frames_get_clean_errors_and_others_keep_being_served() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "2"]);
    let addr = broker.addr.clone();
    create_topic(&addr, "t", 1);
    healthy_round_trip(&addr, 0);
    let owner = shard_for_queue("t", 0, 2);

    // 1. Pure garbage where a frame header should be: an error reply, then the broker closes.
    let mut garbage = RawConnection::connect(&addr, Some(owner));
    garbage.stream.write_all(&[0xFF; 64]).unwrap();
    let err = garbage.read_error();
    assert_eq!(err.code, ErrorCode::BadFrame as u16, "{}", err.message);
    assert!(garbage.is_closed_by_broker());
    healthy_round_trip(&addr, 1);

    // 2. A well-framed produce whose batch CRC is wrong: BadBatch, nothing stored, the same
    //    connection keeps working.
    let mut wrong_crc = RawConnection::connect(&addr, Some(owner));
    let mut batch = encode_batch(&[record(99)]).to_vec();
    let last = batch.len() - 20;
    batch[last] ^= 0xFF;
    let mut payload = envelope::encode_prefix(
        &Produce {
            topic: "t".into(),
            queue_id: 0,
        },
        batch.len(),
    )
    .unwrap();
    payload.extend_from_slice(&batch);
    wrong_crc.send_frame(FrameKind::Produce, 7, &payload);
    let err = wrong_crc.read_error();
    assert_eq!(err.code, ErrorCode::BadBatch as u16, "{}", err.message);
    assert!(
        err.message.contains("CRC") || err.message.contains("padding"),
        "{}",
        err.message
    );
    wrong_crc.send_frame(
        FrameKind::ListTopics,
        8,
        &envelope::encode(&shardmq_protocol::messages::ListTopics {}).unwrap(),
    );
    let (header, _) = wrong_crc
        .read_frame()
        .expect("the connection survives a bad batch");
    assert_eq!(
        (header.kind, header.correlation_id),
        (FrameKind::ListTopicsReply, 8)
    );
    healthy_round_trip(&addr, 2);

    // 3. A length prefix over the limit: refused before anything is allocated, then closed.
    let mut oversize = RawConnection::connect(&addr, None);
    let mut header = shardmq_protocol::FrameHeader::new(FrameKind::Produce, 9, 0)
        .unwrap()
        .encode();
    header[0..4].copy_from_slice(&(FRAME_PAYLOAD_BYTES_MAX + 1).to_le_bytes());
    oversize.stream.write_all(&header).unwrap();
    let err = oversize.read_error();
    assert_eq!(err.code, ErrorCode::BadFrame as u16);
    assert!(err.message.contains("exceeds"), "{}", err.message);
    assert!(oversize.is_closed_by_broker());
    healthy_round_trip(&addr, 3);

    // 4. Garbage instead of a Hello: the handshake is refused.
    let mut no_hello = std::net::TcpStream::connect(&addr).unwrap();
    no_hello
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    no_hello
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut raw = RawConnection { stream: no_hello };
    let err = raw.read_error();
    assert_eq!(err.code, ErrorCode::BadFrame as u16, "{}", err.message);
    healthy_round_trip(&addr, 4);

    // 5. A first frame that claims a megabyte: refused before anything is allocated for it.
    let mut big_hello = std::net::TcpStream::connect(&addr).unwrap();
    big_hello
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    big_hello
        .write_all(
            &shardmq_protocol::FrameHeader::new(FrameKind::Hello, 1, 1 << 20)
                .unwrap()
                .encode(),
        )
        .unwrap();
    let mut raw = RawConnection { stream: big_hello };
    let err = raw.read_error();
    assert_eq!(err.code, ErrorCode::BadFrame as u16);
    assert!(err.message.contains("65536"), "{}", err.message);
    healthy_round_trip(&addr, 5);

    assert_eq!(broker.stop(), Some(0));
}

/// A request that reaches a shard for a queue another shard owns is served through the mesh
/// (`DESIGN.md` §3: forwarded, never refused), long polls included.
#[test]
fn requests_for_a_queue_of_another_shard_are_served_through_the_mesh() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "2"]);
    let addr = broker.addr.clone();
    create_topic(&addr, "t", 2);
    let queue = 0;
    let owner = shard_for_queue("t", queue, 2);
    let mut wrong = RawConnection::connect(&addr, Some(1 - owner));
    let batch = encode_batch(&[record(1)]).to_vec();
    let mut payload = envelope::encode_prefix(
        &Produce {
            topic: "t".into(),
            queue_id: queue,
        },
        batch.len(),
    )
    .unwrap();
    payload.extend_from_slice(&batch);
    wrong.send_frame(FrameKind::Produce, 3, &payload);
    let (header, reply) = wrong.read_frame().expect("a produce reply");
    assert_eq!(header.kind, FrameKind::ProduceReply);
    let ack: shardmq_protocol::messages::ProduceReply = envelope::decode(&reply).unwrap();
    assert_eq!((ack.base_offset, ack.count), (0, 1));
    // A long poll forwarded to the owner is woken by a produce there.
    let pull = envelope::encode(&shardmq_protocol::messages::Pull {
        topic: "t".into(),
        queue_id: queue,
        offset: 1,
        max_messages: 10,
        max_bytes: 1 << 20,
        wait_ms: 10_000,
        filter: None,
        commit: None,
    })
    .unwrap();
    wrong.send_frame(FrameKind::Pull, 4, &pull);
    std::thread::sleep(std::time::Duration::from_millis(200));
    wrong.send_frame(FrameKind::Produce, 5, &payload);
    let mut kinds = Vec::new();
    for _ in 0..2 {
        let (header, reply) = wrong.read_frame().expect("a reply");
        if header.kind == FrameKind::PullReply {
            let meta: shardmq_protocol::messages::PullReply =
                envelope::decode_meta(envelope::split(&reply).unwrap().0).unwrap();
            assert_eq!((meta.batch_count, meta.next_offset), (1, 2));
        }
        kinds.push((header.kind, header.correlation_id));
    }
    kinds.sort_by_key(|k| k.1);
    assert_eq!(
        kinds,
        vec![(FrameKind::PullReply, 4), (FrameKind::ProduceReply, 5)]
    );
    assert_eq!(broker.stop(), Some(0));
}

/// A Hello of another native protocol version (0: a client from before versions were sent; a
/// later one) is refused with a reason naming both versions, before its archive is read, and
/// the connection closed; a Hello of this version is served.
#[test]
fn a_hello_of_another_protocol_version_is_refused_with_both_versions() {
    use shardmq_protocol::frame::{FrameHeader, HELLO_FLAGS, PROTOCOL_VERSION};
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "1"]);
    let hello = envelope::encode(&shardmq_protocol::messages::Hello {
        client_name: "versioned".into(),
        wanted_shard: None,
        credentials: None,
    })
    .unwrap();
    for version in [0u16, u16::from(PROTOCOL_VERSION) + 1] {
        let stream = std::net::TcpStream::connect(&broker.addr).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut raw = RawConnection { stream };
        let mut header = FrameHeader::new(FrameKind::Hello, 1, hello.len()).unwrap();
        assert_eq!(
            header.flags, HELLO_FLAGS,
            "a Hello header carries the version"
        );
        header.flags = version << 8;
        raw.stream.write_all(&header.encode()).unwrap();
        raw.stream.write_all(&hello).unwrap();
        let err = raw.read_error();
        assert_eq!(err.code, ErrorCode::Unsupported as u16, "{}", err.message);
        assert!(
            err.message.contains(&format!("version {version}"))
                && err
                    .message
                    .contains(&format!("broker version {PROTOCOL_VERSION}")),
            "{}",
            err.message
        );
        assert!(raw.is_closed_by_broker());
    }
    RawConnection::connect(&broker.addr, None);
    assert_eq!(broker.stop(), Some(0));
}

#[test]
fn reply_kinds_and_a_second_hello_sent_as_requests_are_refused() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "1"]);
    let mut raw = RawConnection::connect(&broker.addr, None);
    raw.send_frame(
        FrameKind::ProduceReply,
        5,
        &envelope::encode(&shardmq_protocol::messages::ListTopics {}).unwrap(),
    );
    let err = raw.read_error();
    assert_eq!(err.code, ErrorCode::Unsupported as u16, "{}", err.message);
    let hello = shardmq_protocol::messages::Hello {
        client_name: "again".into(),
        wanted_shard: None,
        credentials: None,
    };
    raw.send_frame(FrameKind::Hello, 6, &envelope::encode(&hello).unwrap());
    let err = raw.read_error();
    assert_eq!(err.code, ErrorCode::Unsupported as u16, "{}", err.message);
    raw.send_frame(
        FrameKind::ListTopics,
        7,
        &envelope::encode(&shardmq_protocol::messages::ListTopics {}).unwrap(),
    );
    let (header, _) = raw.read_frame().expect("the connection is still served");
    assert_eq!(
        (header.kind, header.correlation_id),
        (FrameKind::ListTopicsReply, 7)
    );
    assert_eq!(broker.stop(), Some(0));
}

/// Regression: a request naming a topic of a few hundred KB (control characters or plain text)
/// used to reach an `assert!` in the envelope encoder through its error reply and stop the
/// broker. Every request kind that names a topic now gets a short InvalidArgument, the
/// connection goes on, and so does every other client.
#[test]
fn huge_and_control_character_names_in_every_request_kind_get_a_short_error() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "2"]);
    let addr = broker.addr.clone();
    create_topic(&addr, "t", 1);
    healthy_round_trip(&addr, 0);
    let names = [
        "\u{1}\u{2}\u{7f}".repeat(100_000),
        "n".repeat(900_000),
        "topic with spaces".to_string(),
    ];
    let mut raw = RawConnection::connect(&addr, None);
    let mut id = 100;
    for name in &names {
        let batch = encode_batch(&[record(1)]).to_vec();
        let mut produce = envelope::encode_prefix(
            &Produce {
                topic: name.clone(),
                queue_id: 0,
            },
            batch.len(),
        )
        .unwrap();
        produce.extend_from_slice(&batch);
        let pull = envelope::encode(&shardmq_protocol::messages::Pull {
            topic: name.clone(),
            queue_id: 0,
            offset: 0,
            max_messages: 1,
            max_bytes: 1024,
            wait_ms: 0,
            filter: None,
            commit: None,
        })
        .unwrap();
        let offsets = envelope::encode(&shardmq_protocol::messages::QueueOffsets {
            topic: name.clone(),
            queue_id: 0,
        })
        .unwrap();
        let create = envelope::encode(&shardmq_protocol::messages::CreateTopic {
            name: name.clone(),
            queues: 1,
            perm: None,
        })
        .unwrap();
        for (kind, payload) in [
            (FrameKind::Produce, produce),
            (FrameKind::Pull, pull),
            (FrameKind::QueueOffsets, offsets),
            (FrameKind::CreateTopic, create),
        ] {
            id += 1;
            raw.send_frame(kind, id, &payload);
            let err = raw.read_error();
            assert_eq!(
                err.code,
                ErrorCode::InvalidArgument as u16,
                "{kind:?}: {}",
                err.message
            );
            assert!(
                err.message.len() < 200,
                "{kind:?}: the error repeats the name ({} bytes)",
                err.message.len()
            );
        }
    }
    healthy_round_trip(&addr, 1);
    assert_eq!(
        broker.stop(),
        Some(0),
        "the broker is still up and stops cleanly"
    );
}
