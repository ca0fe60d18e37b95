//! A queue batch of sends, split into rounds that deliver decides, claims and records together.
//! Messages in one lane depend on each other — marketing to one person on one channel, where
//! the frequency cap must count the earlier send before deciding the next, or the same message
//! ordered twice — so a lane gives one message to each round, in batch order; every other
//! message goes in the first round. A round has one workspace.

use std::collections::BTreeMap;

/// What a message must wait for within a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lane<'a> {
    /// Marketing to a contact on a channel: counted by the frequency cap.
    Capped { contact: &'a str, channel: &'a str },
    /// Anything else waits only for another order of the same message.
    Own { message: &'a str },
}

/// The lane of a message, from its outbox row's kind, contact, channel and id.
pub fn lane<'a>(kind: &str, contact: &'a str, channel: &'a str, message: &'a str) -> Lane<'a> {
    if kind == "marketing" {
        Lane::Capped { contact, channel }
    } else {
        Lane::Own { message }
    }
}

/// Splits a batch, given each message's (workspace, lane), into rounds of indexes: the k-th
/// message of a lane goes in round k (of its workspace), and every round k comes before any
/// round k + 1. No round is empty.
pub fn rounds<W: Ord + Copy, L: Ord + Copy>(keys: &[(W, L)]) -> Vec<Vec<usize>> {
    let mut seen: BTreeMap<(W, L), usize> = BTreeMap::new();
    let mut rounds: BTreeMap<(usize, W), Vec<usize>> = BTreeMap::new();
    for (i, key) in keys.iter().enumerate() {
        let k = seen.entry(*key).or_insert(0);
        rounds.entry((*k, key.0)).or_default().push(i);
        *k += 1;
    }
    rounds.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail<'a>(contact: &'a str, id: &'a str) -> (&'a str, Lane<'a>) {
        ("default", lane("marketing", contact, "email", id))
    }

    #[test]
    fn independent_messages_share_the_first_round() {
        let keys = [
            mail("c_1", "m_1"),
            mail("c_2", "m_2"),
            ("default", lane("transactional", "c_1", "email", "m_3")),
            ("default", lane("marketing", "c_1", "sms", "m_4")),
        ];
        assert_eq!(rounds(&keys), [vec![0, 1, 2, 3]]);
    }

    #[test]
    fn marketing_to_one_person_on_one_channel_goes_one_per_round_in_order() {
        let keys = [
            mail("c_1", "m_1"),
            mail("c_2", "m_2"),
            mail("c_1", "m_3"),
            mail("c_1", "m_4"),
        ];
        assert_eq!(rounds(&keys), [vec![0, 1], vec![2], vec![3]]);
    }

    #[test]
    fn a_message_ordered_twice_is_never_in_one_round_twice() {
        let receipt = ("default", lane("transactional", "c_1", "email", "m_1"));
        let keys = [receipt, receipt, mail("c_1", "m_2"), mail("c_1", "m_2")];
        assert_eq!(rounds(&keys), [vec![0, 2], vec![1, 3]]);
    }

    #[test]
    fn a_round_has_one_workspace() {
        let keys = [
            mail("c_1", "m_1"),
            ("other", lane("marketing", "c_1", "email", "m_2")),
        ];
        assert_eq!(rounds(&keys), [vec![0], vec![1]]);
        assert!(rounds::<&str, Lane>(&[]).is_empty());
    }
}
