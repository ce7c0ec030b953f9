//! An in-memory stand-in for the shardmq broker, speaking the native protocol over loopback TCP,
//! for the client's end-to-end tests. It runs on the test's glommio executor.
//!
//! What it does: the `Hello` handshake (a connection asking for shard k is served "by" shard k;
//! one without a wish by shard 0), topics, produce (validate, route check, stamp, append), pull
//! (whole batches from the one holding the offset, long-poll), queue offsets, shard map.
//! Requests are handled concurrently per connection, so replies can come back out of order.
//!
//! Test hooks, chosen by topic name: produce to `blackhole` is never answered; produce to
//! `crash` closes the connection.

#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use event_listener::Event;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use rkyv::util::AlignedVec;
use shardmq_protocol::batch::{self, Stamp};
use shardmq_protocol::frame::FRAME_HEADER_BYTES;
use shardmq_protocol::messages::*;
use shardmq_protocol::routing::{shard_for_queue, ROUTING_NAME};
use shardmq_protocol::{envelope, ErrorCode, FrameHeader, FrameKind};

pub const SHARDS: u32 = 2;

#[derive(Default)]
struct QueueLog {
    batches: Vec<AlignedVec<16>>,
    end: u64,
}

struct Topic {
    info: TopicInfo,
    queues: Vec<QueueLog>,
}

#[derive(Default)]
pub struct State {
    topics: RefCell<HashMap<String, Topic>>,
    next_topic_id: Cell<u32>,
    appended: Event,
    pub connections: Cell<usize>,
}

/// Starts the mock on 127.0.0.1 and returns its address.
pub fn start() -> (String, Rc<State>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let state = Rc::new(State::default());
    let st = state.clone();
    glommio::spawn_local(async move {
        loop {
            let Ok(stream) = listener.accept().await else {
                return;
            };
            st.connections.set(st.connections.get() + 1);
            glommio::spawn_local(serve(stream, st.clone())).detach();
        }
    })
    .detach();
    (addr, state)
}

type Out = Rc<RefCell<Option<futures_lite::io::WriteHalf<TcpStream>>>>;

async fn read_frame(
    r: &mut futures_lite::io::ReadHalf<TcpStream>,
) -> Option<(FrameHeader, AlignedVec<16>)> {
    let mut head = [0u8; FRAME_HEADER_BYTES];
    r.read_exact(&mut head).await.ok()?;
    let header = FrameHeader::decode(&head).ok()?;
    let mut payload = AlignedVec::<16>::new();
    payload.resize(header.payload_len as usize, 0);
    r.read_exact(&mut payload).await.ok()?;
    Some((header, payload))
}

async fn send(out: &Out, kind: FrameKind, id: u64, prefix: &[u8], data: &[u8]) {
    let mut frame = FrameHeader::new(kind, id, prefix.len() + data.len())
        .unwrap()
        .encode()
        .to_vec();
    frame.extend_from_slice(prefix);
    frame.extend_from_slice(data);
    // One writer at a time: take the half out, write, put it back.
    loop {
        let taken = out.borrow_mut().take();
        if let Some(mut w) = taken {
            let _ = w.write_all(&frame).await;
            *out.borrow_mut() = Some(w);
            return;
        }
        glommio::timer::Timer::new(Duration::from_micros(50)).await;
    }
}

fn error(code: ErrorCode, message: &str, owner_shard: Option<u32>) -> Vec<u8> {
    envelope::encode(&ErrorReply {
        code: code as u16,
        message: message.into(),
        owner_shard,
    })
    .unwrap()
}

async fn serve(stream: TcpStream, state: Rc<State>) {
    stream.set_nodelay(true).unwrap();
    let (mut reader, writer) = futures_lite::io::split(stream);
    let out: Out = Rc::new(RefCell::new(Some(writer)));
    let Some((header, payload)) = read_frame(&mut reader).await else {
        return;
    };
    assert_eq!(header.kind, FrameKind::Hello, "first frame must be Hello");
    let hello: Hello = envelope::decode(&payload).unwrap();
    let shard = hello.wanted_shard.unwrap_or(0);
    let reply = envelope::encode(&HelloReply {
        shard_id: shard,
        shard_count: SHARDS,
        broker_version: "mock".into(),
        tls_addresses: Vec::new(),
    })
    .unwrap();
    send(
        &out,
        FrameKind::HelloReply,
        header.correlation_id,
        &reply,
        &[],
    )
    .await;
    let closed = Rc::new(Cell::new(false));
    while let Some((header, payload)) = read_frame(&mut reader).await {
        if closed.get() {
            return;
        }
        let (out, state, closed) = (out.clone(), state.clone(), closed.clone());
        glommio::spawn_local(async move {
            handle(header, payload, shard, &out, &state, &closed).await;
        })
        .detach();
    }
}

async fn handle(
    header: FrameHeader,
    payload: AlignedVec<16>,
    shard: u32,
    out: &Out,
    state: &State,
    closed: &Cell<bool>,
) {
    let id = header.correlation_id;
    let kind = header.kind;
    let (meta, data) = envelope::split(&payload).unwrap();
    let reply: Result<(Vec<u8>, Vec<u8>), Vec<u8>> = match kind {
        FrameKind::CreateTopic => {
            let req: CreateTopic = envelope::decode_meta(meta).unwrap();
            let mut topics = state.topics.borrow_mut();
            match topics.entry(req.name.clone()) {
                std::collections::hash_map::Entry::Occupied(_) => {
                    Err(error(ErrorCode::TopicExists, "topic exists", None))
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    let topic_id = state.next_topic_id.get() + 1;
                    state.next_topic_id.set(topic_id);
                    let info = TopicInfo {
                        name: req.name,
                        topic_id,
                        queues: req.queues,
                        perm: req.perm.unwrap_or(6),
                    };
                    slot.insert(Topic {
                        info: info.clone(),
                        queues: (0..req.queues).map(|_| QueueLog::default()).collect(),
                    });
                    Ok((envelope::encode(&info).unwrap(), vec![]))
                }
            }
        }
        FrameKind::ListTopics => {
            let topics = state
                .topics
                .borrow()
                .values()
                .map(|t| t.info.clone())
                .collect();
            Ok((envelope::encode(&TopicList { topics }).unwrap(), vec![]))
        }
        FrameKind::ShardMap => Ok((
            envelope::encode(&ShardMap {
                shard_count: SHARDS,
                routing: ROUTING_NAME.into(),
                serving_shard: shard,
            })
            .unwrap(),
            vec![],
        )),
        FrameKind::Produce => {
            let req: Produce = envelope::decode_meta(meta).unwrap();
            if req.topic == "blackhole" {
                return;
            }
            if req.topic == "crash" {
                closed.set(true);
                let taken = out.borrow_mut().take();
                if let Some(mut w) = taken {
                    let _ = w.close().await;
                }
                return;
            }
            produce(state, shard, &req, data)
        }
        FrameKind::Pull => {
            let req: Pull = envelope::decode_meta(meta).unwrap();
            pull(state, shard, &req).await
        }
        FrameKind::QueueOffsets => {
            let req: QueueOffsets = envelope::decode_meta(meta).unwrap();
            let topics = state.topics.borrow();
            match topics
                .get(&req.topic)
                .and_then(|t| t.queues.get(req.queue_id as usize))
            {
                Some(q) => Ok((
                    envelope::encode(&QueueOffsetsReply {
                        min_offset: 0,
                        max_offset: q.end,
                    })
                    .unwrap(),
                    vec![],
                )),
                None => Err(error(ErrorCode::QueueNotFound, "no such queue", None)),
            }
        }
        other => Err(error(
            ErrorCode::Unsupported,
            &format!("{other:?} unsupported"),
            None,
        )),
    };
    match reply {
        Ok((prefix, data)) => send(out, kind.reply(), id, &prefix, &data).await,
        Err(err) => send(out, FrameKind::Error, id, &err, &[]).await,
    }
}

fn owner_check(state: &State, shard: u32, topic: &str, queue: u32) -> Result<(), Vec<u8>> {
    let topics = state.topics.borrow();
    let Some(t) = topics.get(topic) else {
        return Err(error(ErrorCode::TopicNotFound, "no such topic", None));
    };
    if queue >= t.info.queues {
        return Err(error(ErrorCode::QueueNotFound, "no such queue", None));
    }
    let owner = shard_for_queue(topic, queue, SHARDS);
    if owner != shard {
        return Err(error(ErrorCode::WrongShard, "not mine", Some(owner)));
    }
    Ok(())
}

fn produce(
    state: &State,
    shard: u32,
    req: &Produce,
    data: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), Vec<u8>> {
    owner_check(state, shard, &req.topic, req.queue_id)?;
    let mut batch = AlignedVec::<16>::new();
    batch.extend_from_slice(data);
    let header = batch::validate_incoming(&batch)
        .map_err(|e| error(ErrorCode::BadBatch, &e.to_string(), None))?;
    let mut topics = state.topics.borrow_mut();
    let topic = topics.get_mut(&req.topic).unwrap();
    let topic_id = topic.info.topic_id;
    let q = &mut topic.queues[req.queue_id as usize];
    let base = q.end;
    batch::stamp(
        &mut batch,
        Stamp {
            topic_id,
            queue_id: req.queue_id,
            base_offset: base,
            append_timestamp_ms: 1,
        },
    );
    q.end += u64::from(header.record_count);
    q.batches.push(batch);
    state.appended.notify(usize::MAX);
    Ok((
        envelope::encode(&ProduceReply {
            base_offset: base,
            count: header.record_count,
        })
        .unwrap(),
        vec![],
    ))
}

async fn pull(state: &State, shard: u32, req: &Pull) -> Result<(Vec<u8>, Vec<u8>), Vec<u8>> {
    owner_check(state, shard, &req.topic, req.queue_id)?;
    let deadline = std::time::Instant::now() + Duration::from_millis(u64::from(req.wait_ms));
    loop {
        let listener = state.appended.listen();
        {
            let topics = state.topics.borrow();
            let q = &topics[&req.topic].queues[req.queue_id as usize];
            if req.offset > q.end {
                return Err(error(ErrorCode::OffsetOutOfRange, "past the end", None));
            }
            if req.offset < q.end || std::time::Instant::now() >= deadline {
                let mut data = Vec::new();
                let mut count = 0u32;
                let mut records = 0u64;
                let mut next = req.offset;
                for b in &q.batches {
                    let h = batch::BatchHeader::parse(b).unwrap();
                    if h.end_offset() <= req.offset {
                        continue;
                    }
                    if count > 0
                        && (records >= u64::from(req.max_messages)
                            || data.len() + b.len() > req.max_bytes as usize)
                    {
                        break;
                    }
                    data.extend_from_slice(b);
                    count += 1;
                    records += h.end_offset() - req.offset.max(h.base_offset);
                    next = h.end_offset();
                }
                let meta = PullReply {
                    batch_count: count,
                    next_offset: next,
                    min_offset: 0,
                    max_offset: q.end,
                };
                return Ok((envelope::encode_prefix(&meta, data.len()).unwrap(), data));
            }
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        futures_lite::future::or(listener, async move {
            glommio::timer::Timer::new(left).await;
        })
        .await;
    }
}

/// Runs `f` on a fresh glommio executor with small io memory, and returns its output.
pub fn run<T: Send + 'static, F, Fut>(f: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
{
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}
