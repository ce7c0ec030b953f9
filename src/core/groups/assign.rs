//! How a topic's queues are divided among a group's members: RocketMQ's allocation strategies,
//! exactly as its clients compute them (`AllocateMessageQueueAveragely`,
//! `AllocateMessageQueueAveragelyByCircle`), so a group gets the same split whether the broker
//! computes it (native members) or each member does (RocketMQ 4.x clients).
//!
//! Inputs are sorted by the caller the way RocketMQ sorts them: queues by (topic, broker, queue
//! id), member ids as strings. Every queue goes to exactly one member; a member beyond the
//! queue count gets none.

/// A strategy by name, as members ask for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Strategy {
    /// Contiguous blocks, the first `n mod c` members one queue more (RocketMQ's default).
    #[default]
    Average,
    /// Queue `k` to member `k mod c`.
    Circle,
}

impl Strategy {
    pub fn from_code(code: u8) -> Option<Strategy> {
        match code {
            0 => Some(Strategy::Average),
            1 => Some(Strategy::Circle),
            _ => None,
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Strategy::Average => 0,
            Strategy::Circle => 1,
        }
    }
}

/// The positions (into the sorted queue list) member `index` of `members` gets out of `queues`.
pub fn allocate(strategy: Strategy, queues: usize, members: usize, index: usize) -> Vec<usize> {
    if queues == 0 || members == 0 || index >= members {
        return Vec::new();
    }
    match strategy {
        Strategy::Average => averagely(queues, members, index),
        Strategy::Circle => (index..queues).step_by(members).collect(),
    }
}

fn averagely(queues: usize, members: usize, index: usize) -> Vec<usize> {
    let rest = queues % members;
    let size = if queues <= members {
        1
    } else if rest > 0 && index < rest {
        queues / members + 1
    } else {
        queues / members
    };
    let start = if rest > 0 && index < rest {
        index * size
    } else {
        index * size + rest
    };
    let range = size.min(queues.saturating_sub(start));
    (0..range).map(|i| (start + i) % queues).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(strategy: Strategy, queues: usize, members: usize) -> Vec<Vec<usize>> {
        (0..members)
            .map(|i| allocate(strategy, queues, members, i))
            .collect()
    }

    #[test]
    fn averagely_matches_rocketmq() {
        // Values worked out from AllocateMessageQueueAveragely's code.
        assert_eq!(
            split(Strategy::Average, 8, 3),
            vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7]]
        );
        assert_eq!(
            split(Strategy::Average, 8, 2),
            vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7]]
        );
        assert_eq!(
            split(Strategy::Average, 3, 5),
            vec![vec![0], vec![1], vec![2], vec![], vec![]]
        );
        assert_eq!(
            split(Strategy::Average, 10, 4),
            vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7], vec![8, 9]]
        );
        assert_eq!(
            split(Strategy::Average, 4, 4),
            vec![vec![0], vec![1], vec![2], vec![3]]
        );
    }

    #[test]
    fn by_circle_matches_rocketmq() {
        assert_eq!(
            split(Strategy::Circle, 8, 3),
            vec![vec![0, 3, 6], vec![1, 4, 7], vec![2, 5]]
        );
        assert_eq!(
            split(Strategy::Circle, 2, 3),
            vec![vec![0], vec![1], vec![]]
        );
    }

    #[test]
    fn every_queue_goes_to_exactly_one_member() {
        for strategy in [Strategy::Average, Strategy::Circle] {
            for queues in 0..40 {
                for members in 1..12 {
                    let mut all: Vec<usize> = split(strategy, queues, members).concat();
                    all.sort_unstable();
                    assert_eq!(
                        all,
                        (0..queues).collect::<Vec<_>>(),
                        "{strategy:?} {queues}/{members}"
                    );
                }
            }
        }
        assert!(
            allocate(Strategy::Average, 8, 3, 3).is_empty(),
            "not a member"
        );
    }
}
