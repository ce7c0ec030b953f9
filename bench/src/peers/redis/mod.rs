//! The Redis Streams driver: starts `redis-server` on loopback (AOF on, `appendfsync everysec`
//! or `always`, a fresh directory) and runs the engine's workload against it.
//!
//! Mapping: queue `q` of the topic is the stream `<topic>:<q>` (Redis has no queues; one stream
//! per queue keeps per-queue order, as a partitioned topic would). A batch of N records is N
//! `XADD <stream> * f <payload>` written back to back and acknowledged when all N entry ids have
//! come back — the same unit as a shardmq batch. An end-to-end consumer is an `XREAD COUNT 1024
//! BLOCK <wait> STREAMS <stream> <last id>` loop from the stream's last entry when it subscribed.
//!
//! Each producer has its own connection, pipelined (`--in-flight` requests outstanding).

mod connection;
pub mod resp;

use std::cell::RefCell;
use std::ffi::OsString;
use std::rc::Rc;
use std::time::Duration;

use connection::RespConnection;
use resp::{command, Value};

use crate::engine::{Driver, Position, Publisher, Subscriber};
use crate::error::BenchError;

use super::{PeerServer, PeerTarget};

/// Entries asked for per XREAD.
const READ_COUNT: &str = "1024";

fn start_server(fsync: &str, cpu: Option<usize>) -> Result<PeerServer, BenchError> {
    PeerServer::start("redis-server", cpu, &[], |port, dir| {
        let mut args: Vec<OsString> = [
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--appendonly",
            "yes",
            "--appendfsync",
            fsync,
            "--save",
            "",
            "--dir",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        args.push(dir.as_os_str().to_owned());
        args
    })
}

/// A Redis server for a run: `always` fsyncs the AOF on every write.
pub fn start(always: bool, cpu: Option<usize>) -> Result<PeerServer, BenchError> {
    start_server(if always { "always" } else { "everysec" }, cpu)
}

fn peer_error(message: impl std::fmt::Display) -> BenchError {
    BenchError::Peer {
        system: "redis",
        message: message.to_string(),
    }
}

/// Reaches one Redis server; one per bench executor.
pub struct Redis {
    pub addr: String,
    pub topic: String,
    pub queues: u32,
    pub timeout: Duration,
    pub wait: Duration,
}

impl From<PeerTarget> for Redis {
    fn from(t: PeerTarget) -> Self {
        Redis {
            addr: t.addr,
            topic: t.topic,
            queues: t.queues,
            timeout: t.timeout,
            wait: t.wait,
        }
    }
}

impl Redis {
    fn stream(&self, queue: u32) -> Vec<u8> {
        format!("{}:{queue}", self.topic).into_bytes()
    }

    async fn connect(&self) -> Result<RespConnection, BenchError> {
        RespConnection::connect(&self.addr, self.timeout)
            .await
            .map_err(peer_error)
    }
}

impl Driver for Redis {
    type Publisher = RedisPublisher;
    type Subscriber = RedisSubscriber;

    fn system(&self) -> &'static str {
        "redis-streams"
    }

    async fn queues(&self) -> Result<u32, BenchError> {
        Ok(self.queues)
    }

    async fn publisher(&self, _index: u32, _queues: &[u32]) -> Result<RedisPublisher, BenchError> {
        Ok(RedisPublisher {
            connection: self.connect().await?,
            streams: (0..self.queues).map(|q| self.stream(q)).collect(),
        })
    }

    /// From the start: after `0-0`. From the end: after the stream's current last entry (`XREVRANGE … COUNT 1`; `0-0` for a stream
    /// that does not exist yet). Not `$`: that would mean "after whatever is last when the first
    /// XREAD arrives", and entries added between the start gate and that XREAD would be missed.
    async fn subscriber(&self, queue: u32, from: Position) -> Result<RedisSubscriber, BenchError> {
        let connection = self.connect().await?;
        let stream = self.stream(queue);
        if from == Position::Start {
            return Ok(RedisSubscriber {
                connection,
                stream,
                last_id: b"0-0".to_vec(),
                wait: self.wait,
            });
        }
        let mut out = Vec::new();
        command(
            &mut out,
            &[b"XREVRANGE", &stream, b"+", b"-", b"COUNT", b"1"],
        );
        let reply = connection
            .call(&out, 1, Duration::ZERO)
            .await
            .map_err(peer_error)?
            .pop();
        let last_id = match reply {
            Some(Value::Array(entries)) => match entries.into_iter().next() {
                None => b"0-0".to_vec(),
                Some(Value::Array(mut entry)) if !entry.is_empty() => match entry.swap_remove(0) {
                    Value::Bulk(id) => id,
                    other => return Err(peer_error(format!("XREVRANGE entry id: {other:?}"))),
                },
                Some(other) => return Err(peer_error(format!("XREVRANGE entry: {other:?}"))),
            },
            other => return Err(peer_error(format!("XREVRANGE: {other:?}"))),
        };
        Ok(RedisSubscriber {
            connection,
            stream,
            last_id,
            wait: self.wait,
        })
    }
}

pub struct RedisPublisher {
    connection: RespConnection,
    streams: Vec<Vec<u8>>,
}

/// N XADDs of one payload. The commands name the stream, so they are encoded per stream, on
/// first use: a batch reused for every send (closed and open loop) is encoded once per stream;
/// a stamped end-to-end batch, sent once, only for its own stream.
pub struct RedisBatch {
    count: u32,
    payload: Vec<u8>,
    per_stream: RefCell<Vec<Option<Rc<[u8]>>>>,
}

impl Publisher for RedisPublisher {
    type Batch = RedisBatch;

    fn encode(&self, count: u32, payload: &[u8], _tag: Option<&str>) -> RedisBatch {
        RedisBatch {
            count,
            payload: payload.to_vec(),
            per_stream: RefCell::new(vec![None; self.streams.len()]),
        }
    }

    async fn publish(&self, queue: u32, batch: &RedisBatch) -> Result<u32, BenchError> {
        let stream = self
            .streams
            .get(queue as usize)
            .ok_or_else(|| peer_error(format!("no stream for queue {queue}")))?;
        let commands = batch.per_stream.borrow_mut()[queue as usize]
            .get_or_insert_with(|| {
                let mut out = Vec::with_capacity((batch.payload.len() + 64) * batch.count as usize);
                for _ in 0..batch.count {
                    command(&mut out, &[b"XADD", stream, b"*", b"f", &batch.payload]);
                }
                out.into()
            })
            .clone();
        let replies = self
            .connection
            .call(&commands, batch.count as usize, Duration::ZERO)
            .await
            .map_err(peer_error)?;
        let mut acked = 0;
        let mut first_error = None;
        for reply in replies {
            match reply {
                Value::Bulk(_) => acked += 1,
                other => {
                    first_error.get_or_insert(other);
                }
            }
        }
        match first_error {
            None => Ok(acked),
            Some(e) => Err(peer_error(format!(
                "XADD: {e:?} ({acked} of {} acknowledged)",
                batch.count
            ))),
        }
    }
}

pub struct RedisSubscriber {
    connection: RespConnection,
    stream: Vec<u8>,
    last_id: Vec<u8>,
    wait: Duration,
}

impl Subscriber for RedisSubscriber {
    async fn poll(&mut self, each: &mut dyn FnMut(&[u8])) -> Result<u64, BenchError> {
        let block = self.wait.as_millis().max(1).to_string();
        let mut out = Vec::new();
        command(
            &mut out,
            &[
                b"XREAD",
                b"COUNT",
                READ_COUNT.as_bytes(),
                b"BLOCK",
                block.as_bytes(),
                b"STREAMS",
                &self.stream,
                &self.last_id,
            ],
        );
        let mut replies = self
            .connection
            .call(&out, 1, self.wait)
            .await
            .map_err(peer_error)?;
        let reply = replies.pop().unwrap_or(Value::Nil);
        read_entries(reply, &mut self.last_id, each).map_err(peer_error)
    }
}

/// Walks an XREAD reply (`[[stream, [[id, [field, value, …]], …]]]` or nil), calling `each` with
/// every entry's first value and moving `last_id` to the last entry read.
fn read_entries(
    reply: Value,
    last_id: &mut Vec<u8>,
    each: &mut dyn FnMut(&[u8]),
) -> Result<u64, String> {
    let streams = match reply {
        Value::Nil => return Ok(0),
        Value::Array(streams) => streams,
        other => return Err(format!("XREAD: {other:?}")),
    };
    let mut count = 0;
    for stream in streams {
        let Value::Array(mut pair) = stream else {
            return Err("XREAD: stream is not an array".into());
        };
        let Some(Value::Array(entries)) = pair.pop() else {
            return Err("XREAD: no entry list".into());
        };
        for entry in entries {
            let Value::Array(mut parts) = entry else {
                return Err("XREAD: entry is not an array".into());
            };
            let (Some(Value::Array(fields)), Some(Value::Bulk(id))) = (parts.pop(), parts.pop())
            else {
                return Err("XREAD: entry is not [id, fields]".into());
            };
            if let Some(Value::Bulk(value)) = fields.get(1) {
                each(value);
            }
            *last_id = id;
            count += 1;
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xread_entries_advance_the_last_id() {
        let reply = resp::parse(
            b"*1\r\n*2\r\n$3\r\nt:0\r\n*2\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$2\r\nab\r\n*2\r\n$3\r\n2-0\r\n*2\r\n$1\r\nf\r\n$1\r\nc\r\n",
        )
        .unwrap()
        .unwrap()
        .0;
        let mut last = b"$".to_vec();
        let mut seen = Vec::new();
        let n = read_entries(reply, &mut last, &mut |v| seen.push(v.to_vec())).unwrap();
        assert_eq!(n, 2);
        assert_eq!(seen, vec![b"ab".to_vec(), b"c".to_vec()]);
        assert_eq!(last, b"2-0");
        assert_eq!(read_entries(Value::Nil, &mut last, &mut |_| {}), Ok(0));
        assert!(read_entries(Value::Integer(1), &mut last, &mut |_| {}).is_err());
    }
}
