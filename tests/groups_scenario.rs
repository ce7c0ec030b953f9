//! Consumer groups against a real broker with two shards: members on threads of their own
//! (each a glommio executor with its own client), consuming with the Rust client's push
//! consumer. Clustering splits the queues (each message once), a member joining and one killed
//! mid-stream loses nothing and duplicates only within the bound the commit window allows,
//! broadcasting gives every member everything, orderly consumption keeps per-key order through
//! a member's death.

mod harness;

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{create_topic, data_dir, run, Broker};
use shardmq_client::{
    Client, Filter, Handler, MemberConfig, Mode, Producer, ProducerConfig, PushConfig,
    PushConsumer, StartFromWhere,
};
use shardmq_protocol::Record;

/// One message a member handled: `(member, queue, offset, payload)`.
type Seen = (usize, u32, u64, String);

/// A member running on its own thread until stopped (leaves, commits) or killed (vanishes).
struct Member {
    stop: Arc<AtomicBool>,
    kill: Arc<AtomicBool>,
    settled: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Member {
    fn spawn(
        addr: &str,
        index: usize,
        mut config: PushConfig,
        seen: Arc<Mutex<Vec<Seen>>>,
    ) -> Member {
        config.member.member_id = format!("member-{index}");
        let (stop, kill) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let settled = Arc::new(AtomicU64::new(0));
        let (addr, s, k, m) = (
            addr.to_string(),
            stop.clone(),
            kill.clone(),
            settled.clone(),
        );
        let thread = std::thread::spawn(move || {
            run(move || async move {
                let client = Client::connect(&addr, &format!("member-{index}"))
                    .await
                    .unwrap();
                let handler: Handler = Rc::new(move |message: shardmq_client::Message| {
                    let seen = seen.clone();
                    Box::pin(async move {
                        let payload = String::from_utf8_lossy(&message.record.payload).into_owned();
                        seen.lock().unwrap().push((
                            index,
                            message.queue_id,
                            message.offset,
                            payload,
                        ));
                        Ok(())
                    })
                });
                let consumer = PushConsumer::start(&client, config, handler).await.unwrap();
                loop {
                    m.store(consumer.member().members().len() as u64, Ordering::SeqCst);
                    if k.load(Ordering::SeqCst) {
                        return; // dropped without leaving or committing: a crash
                    }
                    if s.load(Ordering::SeqCst) {
                        consumer.shutdown().await.unwrap();
                        return;
                    }
                    glommio::timer::sleep(Duration::from_millis(10)).await;
                }
            })
        });
        Member {
            stop,
            kill,
            settled,
            thread: Some(thread),
        }
    }

    /// How many members this member sees in its group.
    fn sees(&self) -> u64 {
        self.settled.load(Ordering::SeqCst)
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
    }

    fn kill(mut self) {
        self.kill.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.kill.store(true, Ordering::SeqCst);
            let _ = thread.join();
        }
    }
}

fn config(group: &str, topic: &str, mode: Mode) -> PushConfig {
    let mut member = MemberConfig::new(group, topic);
    member.mode = mode;
    member.session_timeout = Duration::from_secs(5);
    member.heartbeat_interval = Duration::from_millis(500);
    let mut config = PushConfig::new(member);
    config.start_from = StartFromWhere::First;
    config.commit_interval = Duration::from_millis(100);
    config.pull_wait = Duration::from_millis(200);
    config
}

fn wait_until(what: &str, within: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Produces `count` messages "m{i}" round-robin over `queues` queues, `per_second` a second.
fn produce(
    addr: &str,
    topic: &'static str,
    queues: u32,
    range: std::ops::Range<u64>,
    per_second: u64,
) {
    let addr = addr.to_string();
    run(move || async move {
        let client = Client::connect(&addr, "producer").await.unwrap();
        let producer = Producer::new(&client, ProducerConfig::default()).unwrap();
        let start = Instant::now();
        for i in range.clone() {
            let record = Record {
                payload: format!("m{i}").into_bytes(),
                ..Record::default()
            };
            producer
                .send(topic, (i % u64::from(queues)) as u32, record)
                .await
                .unwrap();
            let micros = ((i - range.start) * 1_000_000).checked_div(per_second);
            if let Some(micros) = micros {
                let due = start + Duration::from_micros(micros);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    glommio::timer::sleep(wait).await;
                }
            }
        }
        producer.flush().await.unwrap();
    });
}

/// How often each payload was handled.
fn counts(seen: &Mutex<Vec<Seen>>) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for (_, _, _, payload) in seen.lock().unwrap().iter() {
        *counts.entry(payload.clone()).or_insert(0) += 1;
    }
    counts
}

#[test]
fn three_members_split_eight_queues_and_each_message_is_consumed_once() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "2"]);
    create_topic(&broker.addr, "t", 8);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let members: Vec<Member> = (0..3)
        .map(|i| {
            Member::spawn(
                &broker.addr,
                i,
                config("g", "t", Mode::Clustering),
                seen.clone(),
            )
        })
        .collect();
    wait_until("every member sees three", Duration::from_secs(20), || {
        members.iter().all(|m| m.sees() == 3)
    });
    produce(&broker.addr, "t", 8, 0..4000, 0);
    wait_until("all 4000 arrive", Duration::from_secs(30), || {
        counts(&seen).len() == 4000
    });
    std::thread::sleep(Duration::from_millis(300));
    let counts = counts(&seen);
    assert!(
        counts.values().all(|&c| c == 1),
        "a message was consumed twice"
    );
    let mut by_member: BTreeMap<usize, std::collections::BTreeSet<u32>> = BTreeMap::new();
    for (member, queue, _, _) in seen.lock().unwrap().iter() {
        by_member.entry(*member).or_default().insert(*queue);
    }
    let sizes: Vec<usize> = by_member.values().map(|q| q.len()).collect();
    assert_eq!(
        sizes.iter().sum::<usize>(),
        8,
        "each queue has one member: {by_member:?}"
    );
    assert!(
        sizes.iter().all(|&n| (2..=3).contains(&n)),
        "8 over 3 is 3+3+2: {by_member:?}"
    );
    for m in members {
        m.stop();
    }
    assert_eq!(broker.stop(), Some(0));
}

#[test]
fn a_member_joining_and_one_killed_mid_stream_lose_nothing() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "2"]);
    create_topic(&broker.addr, "t", 8);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let cfg = config("g", "t", Mode::Clustering);
    let a = Member::spawn(&broker.addr, 0, cfg.clone(), seen.clone());
    let b = Member::spawn(&broker.addr, 1, cfg.clone(), seen.clone());
    wait_until("two members", Duration::from_secs(20), || {
        a.sees() == 2 && b.sees() == 2
    });
    const RATE: u64 = 2000;
    const TOTAL: u64 = 12_000;
    let addr = broker.addr.clone();
    let producer = std::thread::spawn(move || produce(&addr, "t", 8, 0..TOTAL, RATE));
    std::thread::sleep(Duration::from_secs(1));
    let c = Member::spawn(&broker.addr, 2, cfg, seen.clone());
    wait_until("three members", Duration::from_secs(20), || c.sees() == 3);
    std::thread::sleep(Duration::from_secs(1));
    b.kill();
    producer.join().unwrap();
    wait_until("every message arrives", Duration::from_secs(40), || {
        counts(&seen).len() as u64 == TOTAL
    });
    std::thread::sleep(Duration::from_millis(500));
    let counts = counts(&seen);
    assert_eq!(counts.len() as u64, TOTAL, "nothing is lost");
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    // Each owner change can repeat what the old owner handled after its last commit: at most a
    // commit interval of traffic, a pull and the messages in flight, for each of the 8 queues,
    // for each of the two changes (the join and the kill).
    let cfg = config("g", "t", Mode::Clustering);
    let per_queue_rate = RATE / 8;
    let window = (per_queue_rate * cfg.commit_interval.as_millis() as u64 / 1000) as usize
        + cfg.pull_batch as usize
        + cfg.max_in_flight;
    let bound = 2 * 8 * window;
    eprintln!("duplicates: {duplicates} (bound {bound})");
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates exceed the commit window bound {bound}"
    );
    a.stop();
    c.stop();
    assert_eq!(broker.stop(), Some(0));
}

#[test]
fn broadcasting_members_each_get_every_message() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "2"]);
    create_topic(&broker.addr, "t", 4);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let members: Vec<Member> = (0..2)
        .map(|i| {
            Member::spawn(
                &broker.addr,
                i,
                config("b", "t", Mode::Broadcasting),
                seen.clone(),
            )
        })
        .collect();
    wait_until("both members", Duration::from_secs(20), || {
        members.iter().all(|m| m.sees() == 2)
    });
    produce(&broker.addr, "t", 4, 0..400, 0);
    wait_until("everyone has everything", Duration::from_secs(30), || {
        counts(&seen).values().filter(|&&c| c == 2).count() == 400
    });
    let per_member: HashMap<usize, usize> =
        seen.lock()
            .unwrap()
            .iter()
            .fold(HashMap::new(), |mut m, (i, ..)| {
                *m.entry(*i).or_insert(0) += 1;
                m
            });
    assert_eq!(per_member.get(&0), Some(&400));
    assert_eq!(per_member.get(&1), Some(&400));
    for m in members {
        m.stop();
    }
    assert_eq!(broker.stop(), Some(0));
}

#[test]
fn orderly_members_keep_per_key_order_when_one_dies() {
    let dir = data_dir();
    let broker = Broker::start(
        dir.path(),
        &["--shards", "2", "--queue-lock-expiry-ms", "1500"],
    );
    create_topic(&broker.addr, "o", 4);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut cfg = config("og", "o", Mode::Clustering);
    cfg.orderly = true;
    cfg.lock_interval = Duration::from_millis(300);
    cfg.member.subscriptions = vec![("o".into(), Filter::all())];
    let a = Member::spawn(&broker.addr, 0, cfg.clone(), seen.clone());
    let b = Member::spawn(&broker.addr, 1, cfg, seen.clone());
    wait_until("two members", Duration::from_secs(20), || {
        a.sees() == 2 && b.sees() == 2
    });
    const KEYS: u64 = 10;
    const PER_KEY: u64 = 300;
    let addr = broker.addr.clone();
    let producer = std::thread::spawn(move || {
        run(move || async move {
            let client = Client::connect(&addr, "keys").await.unwrap();
            let producer = Producer::new(&client, ProducerConfig::default()).unwrap();
            for seq in 0..PER_KEY {
                for key in 0..KEYS {
                    let record = Record {
                        payload: format!("k{key}:{seq}").into_bytes(),
                        ..Record::default()
                    };
                    producer
                        .send_by_key("o", &format!("k{key}"), record)
                        .await
                        .unwrap();
                }
                glommio::timer::sleep(Duration::from_millis(5)).await;
            }
            producer.flush().await.unwrap();
        })
    });
    std::thread::sleep(Duration::from_millis(700));
    b.kill();
    producer.join().unwrap();
    wait_until("every message arrives", Duration::from_secs(40), || {
        counts(&seen).len() as u64 == KEYS * PER_KEY
    });
    // Per member and key, sequence numbers only go up (the survivor may repeat what the dead
    // member had not committed, but starts that repeat from below, in order).
    let mut last: HashMap<(usize, String), Vec<u64>> = HashMap::new();
    for (member, _, _, payload) in seen.lock().unwrap().iter() {
        let (key, seq) = payload.split_once(':').unwrap();
        last.entry((*member, key.to_string()))
            .or_default()
            .push(seq.parse().unwrap());
    }
    // One member at a time consumes a queue: per queue, the consuming member changes at most
    // twice (when b joins and takes half, and when b dies and a takes it back), never back and
    // forth.
    let mut owners: HashMap<u32, Vec<usize>> = HashMap::new();
    for (member, queue, _, _) in seen.lock().unwrap().iter() {
        let list = owners.entry(*queue).or_default();
        if list.last() != Some(member) {
            list.push(*member);
        }
    }
    for (queue, changes) in &owners {
        assert!(
            changes.len() <= 3,
            "queue {queue} went back and forth: {changes:?}"
        );
    }
    for ((member, key), seqs) in &last {
        let runs = seqs.windows(2).filter(|w| w[1] <= w[0]).count();
        assert!(
            runs <= 1,
            "member {member} key {key}: order broke {runs} times: {seqs:?}"
        );
        if *member == 0 {
            let tail = seqs.last().copied().unwrap_or(0);
            assert_eq!(tail, PER_KEY - 1, "the survivor finished key {key}");
        }
    }
    a.stop();
    assert_eq!(broker.stop(), Some(0));
}
