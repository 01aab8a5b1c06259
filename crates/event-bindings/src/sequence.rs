//! Gaps in a wallet's stream, as a consumer sees it.
//!
//! Every wallet event carries its place in its wallet's stream (the CloudEvents `sequence`
//! extension, read by [`crate::cloud_event::sequence`]): 1, 2, 3 ... with no gap. A consumer
//! that wants every change of a wallet can therefore tell, from the sequences alone, a
//! redelivery (at least once: a sequence it has seen) from a gap (a sequence past the next
//! one: the events between have not reached it). [`SequenceTracker`] remembers, per
//! wallet, the highest sequence seen and the ranges still missing below it, and judges each
//! new one; a gap is filled from `GET /v1/wallets/{id}/events?after_sequence=` (what the
//! example consumer does).
//!
//! A wallet's events are spread over several topics (one per event type), and Kafka orders
//! records only within a partition: a consumer of several topics can read sequence 4 from
//! one before sequence 3 from another. That is why a sequence inside a gap reported earlier
//! is [`Observed::Late`] (apply it), not a duplicate.
//!
//! The tracker is in memory and pure: a real consumer keeps each wallet's last applied
//! sequence in its database, in the transaction of its effect (as it keeps the event ids it
//! applied), so that it survives a restart.

use std::collections::HashMap;
use std::hash::Hash;
use std::ops::RangeInclusive;

/// What an observed sequence is, against what was seen before of its wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// The one right after the highest seen (1 for a wallet not seen yet): in order.
    Next,
    /// Seen before (at or below the highest seen, and not missing): a redelivery or a
    /// replay; its effect is already there.
    Duplicate,
    /// Past the next one: the events of `missing` have not been seen. The observed one is
    /// now the highest seen.
    Gap { missing: RangeInclusive<i64> },
    /// Inside a gap reported earlier: it arrived after a later one (from another topic,
    /// or fetched to fill the gap). It is no longer missing.
    Late,
}

/// The sequences seen of each wallet (any key that names one: its id, the CloudEvent's
/// `subject`).
#[derive(Debug, Clone)]
pub struct SequenceTracker<K> {
    streams: HashMap<K, Seen>,
}

/// What was seen of one wallet's stream.
#[derive(Debug, Clone, Default)]
struct Seen {
    /// The highest sequence seen; 0 before the first.
    last: i64,
    /// The ranges below `last` not seen yet, in order, disjoint and never empty.
    missing: Vec<RangeInclusive<i64>>,
}

impl<K: Eq + Hash> SequenceTracker<K> {
    pub fn new() -> Self {
        Self {
            streams: HashMap::new(),
        }
    }

    /// Judges `sequence` of the wallet `key` and remembers it. Sequences start at 1 (all
    /// that [`crate::cloud_event::sequence`] accepts); a lower one is before every stream's
    /// start, so it is never new: [`Observed::Duplicate`].
    pub fn observe(&mut self, key: K, sequence: i64) -> Observed {
        let seen = self.streams.entry(key).or_default();
        if sequence <= seen.last {
            return if seen.take_missing(sequence) {
                Observed::Late
            } else {
                Observed::Duplicate
            };
        }
        // `last < sequence`, so `last + 1` does not overflow.
        let next = seen.last + 1;
        seen.last = sequence;
        if sequence == next {
            Observed::Next
        } else {
            let missing = next..=sequence - 1;
            seen.missing.push(missing.clone());
            Observed::Gap { missing }
        }
    }

    /// The highest sequence seen of `key`'s wallet; `None` before the first.
    pub fn last(&self, key: &K) -> Option<i64> {
        self.streams.get(key).map(|seen| seen.last)
    }

    /// The ranges of `key`'s wallet not seen yet below its highest, oldest first.
    pub fn missing(&self, key: &K) -> &[RangeInclusive<i64>] {
        self.streams
            .get(key)
            .map_or(&[], |seen| seen.missing.as_slice())
    }
}

impl<K: Eq + Hash> Default for SequenceTracker<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl Seen {
    /// Removes `sequence` from the missing ranges; whether it was missing.
    fn take_missing(&mut self, sequence: i64) -> bool {
        let Some(index) = self.missing.iter().position(|r| r.contains(&sequence)) else {
            return false;
        };
        let range = self.missing.remove(index);
        let (start, end) = (*range.start(), *range.end());
        // What is left of the range: the part after `sequence`, then the part before it,
        // each inserted at `index` so that the ranges stay in order.
        if sequence < end {
            self.missing.insert(index, sequence + 1..=end);
        }
        if start < sequence {
            self.missing.insert(index, start..=sequence - 1);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observe_all(
        tracker: &mut SequenceTracker<&'static str>,
        sequences: &[i64],
    ) -> Vec<Observed> {
        sequences
            .iter()
            .map(|sequence| tracker.observe("w", *sequence))
            .collect()
    }

    #[test]
    fn a_stream_in_order_is_next_every_time() {
        let mut tracker = SequenceTracker::new();
        assert_eq!(tracker.last(&"w"), None);
        assert_eq!(
            observe_all(&mut tracker, &[1, 2, 3]),
            [Observed::Next, Observed::Next, Observed::Next]
        );
        assert_eq!(tracker.last(&"w"), Some(3));
        assert!(tracker.missing(&"w").is_empty());
    }

    #[test]
    fn a_skipped_sequence_is_a_gap_naming_exactly_what_is_missing() {
        let mut tracker = SequenceTracker::new();
        let observed = observe_all(&mut tracker, &[1, 2, 4, 5, 9]);
        assert_eq!(
            observed,
            [
                Observed::Next,
                Observed::Next,
                Observed::Gap { missing: 3..=3 },
                Observed::Next,
                Observed::Gap { missing: 6..=8 },
            ]
        );
        assert_eq!(tracker.last(&"w"), Some(9));
        assert_eq!(tracker.missing(&"w"), [3..=3, 6..=8]);
    }

    #[test]
    fn a_first_sight_past_one_is_a_gap_from_the_start() {
        let mut tracker = SequenceTracker::new();
        assert_eq!(tracker.observe("w", 5), Observed::Gap { missing: 1..=4 });
    }

    #[test]
    fn what_was_seen_is_a_duplicate_and_changes_nothing() {
        let mut tracker = SequenceTracker::new();
        observe_all(&mut tracker, &[1, 2, 4]);
        for sequence in [2, 1, 4, 0, -7] {
            assert_eq!(
                tracker.observe("w", sequence),
                Observed::Duplicate,
                "{sequence}"
            );
        }
        assert_eq!(tracker.last(&"w"), Some(4));
        assert_eq!(tracker.missing(&"w"), [3..=3]);
    }

    #[test]
    fn a_late_arrival_fills_its_gap_once_and_then_is_a_duplicate() {
        let mut tracker = SequenceTracker::new();
        observe_all(&mut tracker, &[1, 7]);
        assert_eq!(tracker.missing(&"w"), [2..=6]);
        assert_eq!(tracker.observe("w", 4), Observed::Late);
        assert_eq!(tracker.missing(&"w"), [2..=3, 5..=6]);
        assert_eq!(tracker.observe("w", 2), Observed::Late);
        assert_eq!(tracker.observe("w", 6), Observed::Late);
        assert_eq!(tracker.missing(&"w"), [3..=3, 5..=5]);
        assert_eq!(tracker.observe("w", 4), Observed::Duplicate);
        assert_eq!(
            observe_all(&mut tracker, &[3, 5]),
            [Observed::Late, Observed::Late]
        );
        assert!(tracker.missing(&"w").is_empty());
        assert_eq!(tracker.observe("w", 8), Observed::Next);
    }

    #[test]
    fn each_wallet_has_its_own_stream() {
        let mut tracker = SequenceTracker::new();
        assert_eq!(tracker.observe("a", 1), Observed::Next);
        assert_eq!(tracker.observe("b", 1), Observed::Next);
        assert_eq!(tracker.observe("b", 3), Observed::Gap { missing: 2..=2 });
        assert_eq!(tracker.observe("a", 2), Observed::Next);
        assert!(tracker.missing(&"a").is_empty());
        assert_eq!(tracker.missing(&"b"), [2..=2]);
    }

    #[test]
    fn the_largest_sequence_does_not_overflow() {
        let mut tracker = SequenceTracker::new();
        assert_eq!(
            tracker.observe("w", i64::MAX),
            Observed::Gap {
                missing: 1..=i64::MAX - 1
            }
        );
        assert_eq!(tracker.observe("w", i64::MAX), Observed::Duplicate);
        assert_eq!(tracker.observe("w", 1), Observed::Late);
        assert_eq!(tracker.missing(&"w"), [2..=i64::MAX - 1]);
    }
}
