//! The coordinator's state for the groups homed on one shard: members, generation, assignment.
//! Plain in-memory logic (no I/O, no awaits), so every path is unit-tested with a fake clock;
//! the core wires it to calls, notifications and the groups file.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::assign::{allocate, Strategy};
use super::persist::GroupRecord;
use super::{GroupInfo, GroupView, JoinCall, MemberInfo, Mode, NotifyTarget, Subscription};

struct Member {
    mode: Mode,
    subscriptions: Vec<Subscription>,
    last_seen: Instant,
    session_timeout: Duration,
    notify: Option<NotifyTarget>,
    protocol: &'static str,
}

struct Group {
    record: GroupRecord,
    members: BTreeMap<String, Member>,
    generation: u64,
    assignment: BTreeMap<String, Vec<(String, u32)>>,
}

/// A change to tell members about: the group, its new generation, whom to tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub group: String,
    pub generation: u64,
    pub notify: Vec<NotifyTarget>,
}

#[derive(Default)]
pub struct Coordinator {
    groups: RefCell<BTreeMap<String, Group>>,
    /// The persisted part changed since the last write.
    dirty: Cell<bool>,
}

impl Group {
    fn new(record: GroupRecord) -> Group {
        Group {
            record,
            members: BTreeMap::new(),
            generation: 0,
            assignment: BTreeMap::new(),
        }
    }

    fn view(&self, member: &str) -> GroupView {
        GroupView {
            generation: self.generation,
            members: self.members.keys().cloned().collect(),
            assignment: self.assignment.get(member).cloned().unwrap_or_default(),
        }
    }

    /// Recomputes the assignment; returns the change to announce, if anything changed.
    fn rebalance(
        &mut self,
        queues_of: &dyn Fn(&str) -> u32,
        membership_changed: bool,
    ) -> Option<Changed> {
        let assignment = compute_assignment(&self.members, self.record.strategy, queues_of);
        if assignment == self.assignment && !membership_changed {
            return None;
        }
        self.assignment = assignment;
        self.generation += 1;
        Some(Changed {
            group: self.record.name.clone(),
            generation: self.generation,
            notify: self.members.values().filter_map(|m| m.notify).collect(),
        })
    }
}

/// Every member's queues: per topic, the members subscribing to it (sorted by id) share its
/// queues by `strategy`; broadcasting members get them all.
fn compute_assignment(
    members: &BTreeMap<String, Member>,
    strategy: Strategy,
    queues_of: &dyn Fn(&str) -> u32,
) -> BTreeMap<String, Vec<(String, u32)>> {
    let mut topics: Vec<&str> = members
        .values()
        .flat_map(|m| m.subscriptions.iter().map(|s| s.topic.as_str()))
        .collect();
    topics.sort_unstable();
    topics.dedup();
    let mut assignment: BTreeMap<String, Vec<(String, u32)>> =
        members.keys().map(|id| (id.clone(), Vec::new())).collect();
    for topic in topics {
        let queues = queues_of(topic) as usize;
        let subscribed = |m: &Member| m.subscriptions.iter().any(|s| s.topic == topic);
        let sharing: Vec<&String> = members
            .iter()
            .filter(|(_, m)| subscribed(m) && m.mode == Mode::Clustering)
            .map(|(id, _)| id)
            .collect();
        for (index, id) in sharing.iter().enumerate() {
            for queue in allocate(strategy, queues, sharing.len(), index) {
                assignment
                    .entry((*id).clone())
                    .or_default()
                    .push((topic.to_string(), queue as u32));
            }
        }
        for (id, _) in members
            .iter()
            .filter(|(_, m)| subscribed(m) && m.mode == Mode::Broadcasting)
        {
            let all = (0..queues as u32).map(|q| (topic.to_string(), q));
            assignment.entry(id.clone()).or_default().extend(all);
        }
    }
    for queues in assignment.values_mut() {
        queues.sort();
    }
    assignment
}

impl Coordinator {
    /// A coordinator that knows the groups it persisted (with no members yet).
    pub fn with_records(records: Vec<GroupRecord>) -> Coordinator {
        let groups = records
            .into_iter()
            .map(|r| (r.name.clone(), Group::new(r)))
            .collect();
        Coordinator {
            groups: RefCell::new(groups),
            dirty: Cell::new(false),
        }
    }

    /// A member joins or heartbeats. Returns its view and, if the group changed, the change to
    /// announce to every member.
    pub fn join(
        &self,
        call: JoinCall,
        now: Instant,
        queues_of: &dyn Fn(&str) -> u32,
    ) -> (GroupView, Option<Changed>) {
        let mut groups = self.groups.borrow_mut();
        let group = groups
            .entry(call.group.clone())
            .or_insert_with(|| Group::new(GroupRecord::new(&call.group, call.mode, call.strategy)));
        if self.remember(group, &call) {
            self.dirty.set(true);
        }
        let joined = !group.members.contains_key(&call.member_id);
        let previous = group.members.insert(
            call.member_id.clone(),
            Member {
                mode: call.mode,
                subscriptions: call.subscriptions,
                last_seen: now,
                session_timeout: call.session_timeout,
                notify: call.notify,
                protocol: call.protocol,
            },
        );
        let changed_membership = joined
            || previous.is_some_and(|p| {
                let now_member = &group.members[&call.member_id];
                p.subscriptions != now_member.subscriptions || p.mode != now_member.mode
            });
        let changed = group.rebalance(queues_of, changed_membership);
        (group.view(&call.member_id), changed)
    }

    /// Keeps the group's record in line with what members say; true if it changed.
    fn remember(&self, group: &mut Group, call: &JoinCall) -> bool {
        let record = &mut group.record;
        let mut changed = record.mode != call.mode || record.strategy != call.strategy;
        record.mode = call.mode;
        record.strategy = call.strategy;
        for subscription in &call.subscriptions {
            match record
                .subscriptions
                .iter_mut()
                .find(|s| s.topic == subscription.topic)
            {
                Some(known) if known == subscription => {}
                Some(known) => {
                    *known = subscription.clone();
                    changed = true;
                }
                None => {
                    record.subscriptions.push(subscription.clone());
                    changed = true;
                }
            }
        }
        changed
    }

    /// A member leaves; `only_via`: only if it is still registered through that connection (a
    /// closed connection must not remove a member that has joined again elsewhere).
    pub fn leave(
        &self,
        group: &str,
        member_id: &str,
        only_via: Option<NotifyTarget>,
        queues_of: &dyn Fn(&str) -> u32,
    ) -> Option<Changed> {
        let mut groups = self.groups.borrow_mut();
        let group = groups.get_mut(group)?;
        let registered = group.members.get(member_id)?;
        if only_via.is_some() && registered.notify != only_via {
            return None;
        }
        group.members.remove(member_id);
        group.rebalance(queues_of, true)
    }

    /// Removes every member whose heartbeat is older than its session timeout, and rebalances
    /// groups whose topics changed queue counts.
    pub fn expire(&self, now: Instant, queues_of: &dyn Fn(&str) -> u32) -> Vec<Changed> {
        let mut changes = Vec::new();
        for group in self.groups.borrow_mut().values_mut() {
            let before = group.members.len();
            group
                .members
                .retain(|_, m| now.saturating_duration_since(m.last_seen) <= m.session_timeout);
            if let Some(change) = group.rebalance(queues_of, group.members.len() != before) {
                changes.push(change);
            }
        }
        changes
    }

    /// The members of a group, sorted (what a client-side strategy needs).
    pub fn view(&self, group: &str, member: &str) -> Option<GroupView> {
        self.groups.borrow().get(group).map(|g| g.view(member))
    }

    pub fn info(&self, group: &str, now: Instant) -> Option<GroupInfo> {
        self.groups.borrow().get(group).map(|g| info(g, now))
    }

    pub fn list(&self, now: Instant) -> Vec<GroupInfo> {
        self.groups
            .borrow()
            .values()
            .map(|g| info(g, now))
            .collect()
    }

    /// Forgets a group (its members are told the group is gone: they see an empty view).
    pub fn delete(&self, group: &str) -> Option<Changed> {
        let removed = self.groups.borrow_mut().remove(group)?;
        self.dirty.set(true);
        Some(Changed {
            group: group.to_string(),
            generation: removed.generation + 1,
            notify: removed.members.values().filter_map(|m| m.notify).collect(),
        })
    }

    /// The records to persist, if they changed since the last call.
    pub fn take_dirty_records(&self) -> Option<Vec<GroupRecord>> {
        if !self.dirty.replace(false) {
            return None;
        }
        Some(
            self.groups
                .borrow()
                .values()
                .map(|g| g.record.clone())
                .collect(),
        )
    }

    /// Marks the records changed again (a write failed).
    pub fn mark_dirty(&self) {
        self.dirty.set(true);
    }
}

fn info(group: &Group, now: Instant) -> GroupInfo {
    GroupInfo {
        name: group.record.name.clone(),
        mode: group.record.mode,
        strategy: group.record.strategy,
        generation: group.generation,
        subscriptions: group.record.subscriptions.clone(),
        members: group
            .members
            .iter()
            .map(|(id, m)| MemberInfo {
                member_id: id.clone(),
                mode: m.mode,
                subscriptions: m.subscriptions.clone(),
                assignment: group.assignment.get(id).cloned().unwrap_or_default(),
                idle_ms: now.saturating_duration_since(m.last_seen).as_millis() as u64,
                protocol: m.protocol,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::groups::FilterSpec;

    fn join(group: &str, member: &str, topics: &[&str], mode: Mode, connection: u64) -> JoinCall {
        JoinCall {
            group: group.into(),
            member_id: member.into(),
            mode,
            strategy: Strategy::Average,
            subscriptions: topics
                .iter()
                .map(|t| Subscription {
                    topic: (*t).into(),
                    filter: FilterSpec::all(),
                })
                .collect(),
            session_timeout: Duration::from_secs(10),
            protocol: "native",
            notify: Some(NotifyTarget {
                shard: 0,
                connection,
            }),
        }
    }

    fn eight(topic: &str) -> u32 {
        if topic == "t" {
            8
        } else {
            2
        }
    }

    #[test]
    fn members_share_queues_and_every_change_is_announced() {
        let c = Coordinator::default();
        let now = Instant::now();
        let (a, changed) = c.join(join("g", "a", &["t"], Mode::Clustering, 1), now, &eight);
        assert_eq!(a.assignment.len(), 8);
        assert_eq!(changed.unwrap().notify.len(), 1);
        let (b, changed) = c.join(join("g", "b", &["t"], Mode::Clustering, 2), now, &eight);
        let changed = changed.unwrap();
        assert_eq!(changed.notify.len(), 2, "both members are told");
        assert_eq!(b.members, vec!["a", "b"]);
        assert_eq!(
            b.assignment,
            (4..8).map(|q| ("t".to_string(), q)).collect::<Vec<_>>()
        );
        let a = c.view("g", "a").unwrap();
        assert_eq!(
            a.assignment,
            (0..4).map(|q| ("t".to_string(), q)).collect::<Vec<_>>()
        );
        // A heartbeat that changes nothing announces nothing.
        let (_, again) = c.join(join("g", "b", &["t"], Mode::Clustering, 2), now, &eight);
        assert!(again.is_none());
        // Leaving through another connection is ignored; through its own, it leaves.
        assert!(c
            .leave(
                "g",
                "b",
                Some(NotifyTarget {
                    shard: 0,
                    connection: 9
                }),
                &eight
            )
            .is_none());
        let left = c
            .leave(
                "g",
                "b",
                Some(NotifyTarget {
                    shard: 0,
                    connection: 2,
                }),
                &eight,
            )
            .unwrap();
        assert_eq!(left.generation, b.generation + 1);
        assert_eq!(c.view("g", "a").unwrap().assignment.len(), 8);
    }

    #[test]
    fn silent_members_expire_and_broadcasting_members_get_everything() {
        let c = Coordinator::default();
        let start = Instant::now();
        c.join(join("g", "a", &["t"], Mode::Clustering, 1), start, &eight);
        c.join(
            join("g", "b", &["t", "u"], Mode::Clustering, 2),
            start,
            &eight,
        );
        let later = start + Duration::from_secs(11);
        c.join(join("g", "a", &["t"], Mode::Clustering, 1), later, &eight);
        let changes = c.expire(later, &eight);
        assert_eq!(changes.len(), 1, "b missed its heartbeats");
        assert_eq!(c.view("g", "a").unwrap().members, vec!["a"]);

        c.join(
            join("bc", "x", &["t"], Mode::Broadcasting, 3),
            start,
            &eight,
        );
        let (y, _) = c.join(
            join("bc", "y", &["t"], Mode::Broadcasting, 4),
            start,
            &eight,
        );
        assert_eq!(y.assignment.len(), 8);
        assert_eq!(c.view("bc", "x").unwrap().assignment.len(), 8);
    }

    #[test]
    fn records_keep_subscriptions_and_are_written_only_when_changed() {
        let c = Coordinator::default();
        let now = Instant::now();
        c.join(join("g", "a", &["t"], Mode::Clustering, 1), now, &eight);
        let records = c.take_dirty_records().unwrap();
        assert_eq!(records[0].subscriptions.len(), 1);
        c.join(join("g", "a", &["t"], Mode::Clustering, 1), now, &eight);
        assert!(c.take_dirty_records().is_none());
        let restored = Coordinator::with_records(records);
        let info = restored.info("g", now).unwrap();
        assert!(info.members.is_empty());
        assert_eq!(info.subscriptions[0].topic, "t");
        assert!(restored.delete("g").is_some());
        assert!(restored.info("g", now).is_none());
    }
}
