//! Consuming through a consumer group, and tagging what is produced, for end-to-end runs.
//!
//! - [`GroupRun`]: with `bench end-to-end --group G`, every consumer executor is one member of
//!   `G` (clustering: the queues are divided among them by the system; broadcasting: every member
//!   reads every queue), each with the same optional filter, committing its progress in the
//!   group as it goes. The run starts only when every member sees the whole group, so the
//!   assignment is settled before anything is measured.
//! - [`TagMix`]: with `--tags a:1,b:99`, batches carry tags in those proportions. Per queue the
//!   tags follow one fixed cycle, so every queue gets every tag in proportion and the share a
//!   tag filter selects is known exactly.
//! - Receipts expected: each acknowledged record is expected `receipts_per_record` times
//!   (0 when the run's tag filter drops its tag, the member count when broadcasting). A SQL92
//!   filter's selection is not computed by the bench: such runs end on the drain timeout.

use crate::error::BenchError;

/// Tags per `--tags` at most (each gets its own pre-encoded batch).
pub const TAGS_MAX: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRun {
    pub name: String,
    pub broadcasting: bool,
    pub filter: Option<BenchFilter>,
}

/// A subscription's filter, as RocketMQ expresses them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BenchFilter {
    /// `*` or `tagA || tagB`.
    Tags(String),
    /// SQL92 over properties (and `TAGS`).
    Sql(String),
}

impl BenchFilter {
    /// Whether a record tagged `tag` passes; `None` when the bench cannot tell (SQL92).
    pub fn passes(&self, tag: Option<&str>) -> Option<bool> {
        match self {
            BenchFilter::Sql(_) => None,
            BenchFilter::Tags(expression) => {
                let wanted: Vec<&str> = expression
                    .split("||")
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .collect();
                if wanted.is_empty() || wanted.contains(&"*") {
                    return Some(true);
                }
                Some(tag.is_some_and(|t| wanted.contains(&t)))
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            BenchFilter::Tags(e) => format!("tags {e}"),
            BenchFilter::Sql(e) => format!("sql92 {e}"),
        }
    }
}

/// The tags batches carry, with their weights; empty: untagged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagMix {
    tags: Vec<(String, u32)>,
    total: u32,
}

impl TagMix {
    /// Parses `name[:weight],…` (weight 1 when omitted).
    pub fn parse(spec: &str) -> Result<TagMix, BenchError> {
        let bad = |why: String| BenchError::InvalidArgs(format!("--tags {spec:?}: {why}"));
        let mut tags = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = match part.rsplit_once(':') {
                Some((name, weight)) => (
                    name.trim(),
                    weight
                        .trim()
                        .parse::<u32>()
                        .map_err(|_| bad(format!("weight of {name:?} is not a number")))?,
                ),
                None => (part, 1),
            };
            if name.is_empty() || name.contains("||") || name.chars().any(char::is_whitespace) {
                return Err(bad(format!("{name:?} is not a tag")));
            }
            if !(1..=1_000_000).contains(&weight) {
                return Err(bad(format!("weight of {name:?} must be 1..=1000000")));
            }
            if tags.iter().any(|(t, _)| t == name) {
                return Err(bad(format!("{name:?} is listed twice")));
            }
            tags.push((name.to_owned(), weight));
        }
        if tags.len() > TAGS_MAX {
            return Err(bad(format!("at most {TAGS_MAX} tags")));
        }
        let total = tags.iter().map(|(_, w)| w).sum();
        Ok(TagMix { tags, total })
    }

    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    /// The distinct tags, in the order given (`None` alone when untagged).
    pub fn variants(&self) -> Vec<Option<&str>> {
        if self.tags.is_empty() {
            return vec![None];
        }
        self.tags.iter().map(|(t, _)| Some(t.as_str())).collect()
    }

    /// Which of [`TagMix::variants`] the `round`-th batch of a queue carries: the cycle of
    /// `total` slots gives tag k `weight_k` consecutive slots.
    pub fn variant_for(&self, round: u64) -> usize {
        if self.tags.is_empty() {
            return 0;
        }
        let mut slot = (round % u64::from(self.total)) as u32;
        for (k, (_, weight)) in self.tags.iter().enumerate() {
            if slot < *weight {
                return k;
            }
            slot -= weight;
        }
        unreachable!("slot < total")
    }

    pub fn describe(&self) -> String {
        self.tags
            .iter()
            .map(|(t, w)| format!("{t}:{w}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// How many times the consumers should receive one acknowledged record tagged `tag`; `None`
/// when the bench cannot tell (a SQL92 filter).
pub fn receipts_per_record(
    group: Option<&GroupRun>,
    members: u32,
    tag: Option<&str>,
) -> Option<u64> {
    let Some(group) = group else {
        return Some(1);
    };
    let passes = match &group.filter {
        Some(filter) => filter.passes(tag)?,
        None => true,
    };
    let copies = if group.broadcasting { members } else { 1 };
    Some(if passes { u64::from(copies) } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_mix_follows_its_weights_per_cycle() {
        let mix = TagMix::parse("a:1, b:3 ,c").unwrap();
        let picks: Vec<usize> = (0..5).map(|r| mix.variant_for(r)).collect();
        assert_eq!(picks, [0, 1, 1, 1, 2]);
        let hundred = TagMix::parse("rare:1,common:99").unwrap();
        let rare = (0..10_000).filter(|&r| hundred.variant_for(r) == 0).count();
        assert_eq!(rare, 100);
        assert_eq!(TagMix::parse("").unwrap().variants(), vec![None]);
    }

    #[test]
    fn bad_tag_lists_are_refused() {
        for spec in ["a:0", "a:x", "a,a", "a b", "x||y", ":3"] {
            assert!(TagMix::parse(spec).is_err(), "{spec}");
        }
    }

    #[test]
    fn receipts_follow_mode_and_filter() {
        let tags = |e: &str| GroupRun {
            name: "g".into(),
            broadcasting: false,
            filter: Some(BenchFilter::Tags(e.into())),
        };
        assert_eq!(receipts_per_record(None, 3, Some("a")), Some(1));
        assert_eq!(
            receipts_per_record(Some(&tags("a || b")), 3, Some("b")),
            Some(1)
        );
        assert_eq!(
            receipts_per_record(Some(&tags("a || b")), 3, Some("c")),
            Some(0)
        );
        assert_eq!(receipts_per_record(Some(&tags("a")), 3, None), Some(0));
        assert_eq!(receipts_per_record(Some(&tags("*")), 3, None), Some(1));
        let broadcast = GroupRun {
            broadcasting: true,
            ..tags("a")
        };
        assert_eq!(receipts_per_record(Some(&broadcast), 3, Some("a")), Some(3));
        let sql = GroupRun {
            filter: Some(BenchFilter::Sql("a > 1".into())),
            ..tags("a")
        };
        assert_eq!(receipts_per_record(Some(&sql), 3, Some("a")), None);
    }
}
