//! The brokers that registered with a name server (REGISTER_BROKER), and the routes they make:
//! RocketMQ's `RouteInfoManager`, as plain data (no I/O; the clock is passed in), shared by the
//! standalone name server (`shardmq namesrv`) and the embedded one, which routes to its own
//! shards and to any other broker that registered with it.
//!
//! Semantics (rocketmq-protocol.md §4.10): a registration names the broker (cluster, broker
//! name, master address), refreshes its last-seen time and upserts the topics its body lists
//! with their queue counts and permission; topics it does not list stay until
//! DELETE_TOPIC_IN_NAMESRV or until the broker expires (Java's default, so a registration split
//! over several frames needs no reassembly). A broker not heard from for its heartbeat timeout
//! (120 s unless its registration says otherwise) expires with its topics; UNREGISTER_BROKER
//! removes it at once. Only masters (broker id 0) are routed.
//!
//! Limits: at most `BROKERS_MAX` brokers and `TOPICS_PER_BROKER_MAX` topics per broker; a
//! registration beyond them is refused with the reason, and changes nothing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use shardmq_protocol::remoting::bodies::{BrokerData, QueueData, TopicConfig};

/// Java's BROKER_CHANNEL_EXPIRED_TIME.
pub const BROKER_EXPIRY_DEFAULT: Duration = Duration::from_secs(120);
pub const BROKERS_MAX: usize = 1024;
pub const TOPICS_PER_BROKER_MAX: usize = 100_000;

/// One REGISTER_BROKER request, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub cluster: String,
    pub broker_name: String,
    pub broker_addr: String,
    pub broker_id: i64,
    pub topics: Vec<TopicConfig>,
    pub expiry: Duration,
}

#[derive(Debug, Clone)]
struct Registered {
    cluster: String,
    addr: String,
    topics: BTreeMap<String, TopicConfig>,
    last_seen: Instant,
    expiry: Duration,
}

#[derive(Debug, Default)]
pub struct BrokerRegistry {
    brokers: BTreeMap<String, Registered>,
}

impl BrokerRegistry {
    /// Applies a registration; an error says why it was refused (nothing changed then).
    pub fn register(&mut self, reg: Registration, now: Instant) -> Result<(), String> {
        if reg.broker_id != 0 {
            // A slave: Java records its address for HA; shardmq routes masters only.
            return Ok(());
        }
        if !self.brokers.contains_key(&reg.broker_name) && self.brokers.len() >= BROKERS_MAX {
            return Err(format!("{BROKERS_MAX} brokers are registered already"));
        }
        let known = self.brokers.get(&reg.broker_name).map(|b| &b.topics);
        let added = reg
            .topics
            .iter()
            .filter(|t| known.is_none_or(|k| !k.contains_key(&t.name)))
            .count();
        if known.map_or(0, BTreeMap::len) + added > TOPICS_PER_BROKER_MAX {
            return Err(format!(
                "broker {} would have more than {TOPICS_PER_BROKER_MAX} topics",
                reg.broker_name
            ));
        }
        let entry = self
            .brokers
            .entry(reg.broker_name.clone())
            .or_insert_with(|| Registered {
                cluster: reg.cluster.clone(),
                addr: reg.broker_addr.clone(),
                topics: BTreeMap::new(),
                last_seen: now,
                expiry: reg.expiry,
            });
        entry.cluster = reg.cluster;
        entry.addr = reg.broker_addr;
        entry.last_seen = now;
        entry.expiry = reg.expiry;
        for topic in reg.topics {
            entry.topics.insert(topic.name.clone(), topic);
        }
        Ok(())
    }

    /// Removes a broker if it is registered at `addr`; true if it was.
    pub fn unregister(&mut self, broker_name: &str, addr: &str) -> bool {
        let registered = self
            .brokers
            .get(broker_name)
            .is_some_and(|b| b.addr == addr);
        if registered {
            self.brokers.remove(broker_name);
        }
        registered
    }

    /// Forgets a topic on every broker (or on those of `cluster`).
    pub fn delete_topic(&mut self, topic: &str, cluster: Option<&str>) {
        for broker in self.brokers.values_mut() {
            if cluster.is_none_or(|c| c == broker.cluster) {
                broker.topics.remove(topic);
            }
        }
    }

    /// Drops brokers whose registration is older than their expiry; their names.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let expired: Vec<String> = self
            .brokers
            .iter()
            .filter(|(_, b)| now.saturating_duration_since(b.last_seen) > b.expiry)
            .map(|(name, _)| name.clone())
            .collect();
        for name in &expired {
            self.brokers.remove(name);
        }
        expired
    }

    fn broker_data(name: &str, b: &Registered) -> BrokerData {
        BrokerData {
            cluster: b.cluster.clone(),
            broker_name: name.to_string(),
            master_addr: b.addr.clone(),
        }
    }

    /// Every registered broker.
    pub fn brokers(&self) -> Vec<BrokerData> {
        self.brokers
            .iter()
            .map(|(name, b)| Self::broker_data(name, b))
            .collect()
    }

    /// The registered brokers that have `topic`, with their queues of it.
    pub fn route(&self, topic: &str) -> (Vec<BrokerData>, Vec<QueueData>) {
        let mut brokers = Vec::new();
        let mut queues = Vec::new();
        for (name, b) in &self.brokers {
            let Some(config) = b.topics.get(topic) else {
                continue;
            };
            brokers.push(Self::broker_data(name, b));
            queues.push(QueueData {
                broker_name: name.clone(),
                read_queue_nums: config.read_queue_nums,
                write_queue_nums: config.write_queue_nums,
                perm: config.perm,
            });
        }
        (brokers, queues)
    }

    /// Every topic some broker (of `cluster`, if given) registered, by name.
    pub fn topics(&self, cluster: Option<&str>) -> Vec<String> {
        let mut names: Vec<String> = self
            .brokers
            .values()
            .filter(|b| cluster.is_none_or(|c| c == b.cluster))
            .flat_map(|b| b.topics.keys().cloned())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, queues: u32) -> TopicConfig {
        TopicConfig {
            name: name.into(),
            read_queue_nums: queues,
            write_queue_nums: queues,
            perm: 6,
        }
    }

    fn reg(name: &str, addr: &str, topics: Vec<TopicConfig>) -> Registration {
        Registration {
            cluster: "c".into(),
            broker_name: name.into(),
            broker_addr: addr.into(),
            broker_id: 0,
            topics,
            expiry: BROKER_EXPIRY_DEFAULT,
        }
    }

    #[test]
    fn split_registrations_add_up_and_routes_span_brokers() {
        let now = Instant::now();
        let mut r = BrokerRegistry::default();
        r.register(reg("a", "h:1", vec![topic("t", 4)]), now)
            .unwrap();
        r.register(reg("a", "h:1", vec![topic("u", 2)]), now)
            .unwrap();
        r.register(reg("b", "h:2", vec![topic("t", 3)]), now)
            .unwrap();
        let (brokers, queues) = r.route("t");
        assert_eq!(brokers.len(), 2);
        assert_eq!(queues.iter().map(|q| q.read_queue_nums).sum::<u32>(), 7);
        assert_eq!(
            r.route("u").1.len(),
            1,
            "the second part of a's registration"
        );
        assert_eq!(r.topics(None), ["t", "u"]);
        r.delete_topic("t", None);
        assert!(r.route("t").0.is_empty());
    }

    #[test]
    fn brokers_expire_or_unregister_and_slaves_are_not_routed() {
        let now = Instant::now();
        let mut r = BrokerRegistry::default();
        r.register(reg("a", "h:1", vec![topic("t", 4)]), now)
            .unwrap();
        let mut slave = reg("s", "h:9", vec![topic("t", 4)]);
        slave.broker_id = 1;
        r.register(slave, now).unwrap();
        assert_eq!(r.brokers().len(), 1);
        assert!(!r.unregister("a", "h:other"), "only from its own address");
        assert!(r.expire(now + Duration::from_secs(60)).is_empty());
        assert_eq!(r.expire(now + Duration::from_secs(121)), ["a"]);
        assert!(r.route("t").0.is_empty());
        r.register(reg("a", "h:1", vec![]), now).unwrap();
        assert!(r.unregister("a", "h:1"));
        assert!(r.brokers().is_empty());
    }

    #[test]
    fn a_registration_beyond_the_limits_changes_nothing() {
        let now = Instant::now();
        let mut r = BrokerRegistry::default();
        for k in 0..BROKERS_MAX {
            r.register(reg(&format!("b{k}"), "h:1", vec![]), now)
                .unwrap();
        }
        let err = r.register(reg("one-more", "h:1", vec![topic("t", 1)]), now);
        assert!(err.unwrap_err().contains("brokers are registered already"));
        assert!(r.route("t").0.is_empty());
        let mut fresh = BrokerRegistry::default();
        let many: Vec<_> = (0..=TOPICS_PER_BROKER_MAX)
            .map(|i| topic(&format!("t{i}"), 1))
            .collect();
        let err = fresh.register(reg("big", "h:1", many), now).unwrap_err();
        assert!(err.contains("topics"), "{err}");
        assert!(
            fresh.brokers().is_empty(),
            "a refused first registration leaves no broker"
        );
    }
}
