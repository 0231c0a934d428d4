//! A consumer group's acknowledgements on one partition: the acked prefix (every
//! offset below it is done) plus the individual acks above it. This is what the
//! group cursor control records carry (DESIGN.md section 7); it is kept small by
//! folding individual acks into the prefix as soon as they become contiguous.

use crate::ids::Offset;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Most individual acks held above the prefix; beyond it acks are refused with a
/// backpressure error until the gap at the prefix is acked (STYLE.md item 7).
pub const DEFAULT_MAX_INDIVIDUAL_ACKS: usize = 100_000;

/// Why an ack was not taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// Too many acks above the prefix are outstanding.
    #[error("{held} individual acks above offset {prefix} are outstanding; ack the oldest record first")]
    TooManyIndividualAcks {
        /// The acked prefix.
        prefix: Offset,
        /// Individual acks held.
        held: usize,
    },
}

/// The acked state of one partition for one group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckSet {
    prefix: Offset,
    above: BTreeSet<Offset>,
    #[serde(skip, default = "default_max")]
    max_individual: usize,
}

fn default_max() -> usize {
    DEFAULT_MAX_INDIVIDUAL_ACKS
}

impl AckSet {
    /// Nothing acked yet; consumption starts at `start`.
    pub fn new(start: Offset) -> Self {
        AckSet { prefix: start, above: BTreeSet::new(), max_individual: DEFAULT_MAX_INDIVIDUAL_ACKS }
    }

    /// Sets the bound on individual acks.
    pub fn with_max_individual(mut self, max: usize) -> Self {
        self.max_individual = max;
        self
    }

    /// Every offset below this is acked.
    pub fn prefix(&self) -> Offset {
        self.prefix
    }

    /// Individual acks held above the prefix.
    pub fn individual(&self) -> usize {
        self.above.len()
    }

    /// Whether `o` is acked.
    pub fn is_acked(&self, o: Offset) -> bool {
        o < self.prefix || self.above.contains(&o)
    }

    /// Acks one offset. Returns whether anything changed.
    pub fn ack(&mut self, o: Offset) -> Result<bool, AckError> {
        if self.is_acked(o) {
            return Ok(false);
        }
        if o == self.prefix {
            self.prefix = o.next();
            self.fold();
            return Ok(true);
        }
        if self.above.len() >= self.max_individual {
            return Err(AckError::TooManyIndividualAcks { prefix: self.prefix, held: self.above.len() });
        }
        self.above.insert(o);
        Ok(true)
    }

    /// Cumulative ack: everything below `end` is done. Returns whether anything
    /// changed.
    pub fn ack_up_to(&mut self, end: Offset) -> bool {
        if end <= self.prefix {
            return false;
        }
        self.prefix = end;
        self.above = self.above.split_off(&end);
        self.fold();
        true
    }

    /// The first offset at or after `from` that is not acked.
    pub fn next_unacked(&self, from: Offset) -> Offset {
        let mut o = from.max(self.prefix);
        while self.above.contains(&o) {
            o = o.next();
        }
        o
    }

    fn fold(&mut self) {
        while self.above.first() == Some(&self.prefix) {
            self.above.pop_first();
            self.prefix = self.prefix.next();
        }
    }

    /// Whether a decoded set is canonical and within bounds (`Err` says why);
    /// cursor records from the log are checked with it before they are trusted.
    pub fn validate(&self) -> Result<(), String> {
        if self.above.first().is_some_and(|o| *o <= self.prefix) {
            return Err(format!("an individual ack at or below the prefix {}", self.prefix));
        }
        if self.above.len() > self.max_individual {
            return Err(format!("{} individual acks, more than the {} allowed", self.above.len(), self.max_individual));
        }
        Ok(())
    }

    /// The individual acks above the prefix, lowest first.
    pub fn acked_above(&self) -> impl Iterator<Item = Offset> + '_ {
        self.above.iter().copied()
    }

    /// Panics if the representation is not canonical.
    pub fn check_invariants(&self) {
        assert!(self.above.first().is_none_or(|o| *o > self.prefix), "an individual ack at or below the prefix");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn acks_fold_into_the_prefix_once_contiguous() {
        let mut a = AckSet::new(Offset(10));
        assert_eq!(a.ack(Offset(12)), Ok(true));
        assert_eq!(a.ack(Offset(11)), Ok(true));
        assert_eq!((a.prefix(), a.individual()), (Offset(10), 2));
        assert_eq!(a.ack(Offset(10)), Ok(true));
        assert_eq!((a.prefix(), a.individual()), (Offset(13), 0));
        assert_eq!(a.ack(Offset(3)), Ok(false), "below the prefix: already done");
    }

    #[test]
    fn individual_acks_are_bounded() {
        let mut a = AckSet::new(Offset(0)).with_max_individual(2);
        a.ack(Offset(5)).unwrap();
        a.ack(Offset(6)).unwrap();
        assert!(matches!(a.ack(Offset(7)), Err(AckError::TooManyIndividualAcks { .. })));
        a.ack_up_to(Offset(5));
        assert_eq!(a.prefix(), Offset(7));
        assert_eq!(a.ack(Offset(9)), Ok(true));
    }

    proptest! {
        /// Against a plain set model: `is_acked`, the prefix and `next_unacked`.
        #[test]
        fn matches_a_set_model(ops in proptest::collection::vec((any::<bool>(), 0u64..64), 0..200)) {
            let mut a = AckSet::new(Offset(0));
            let mut model = std::collections::BTreeSet::new();
            for (cumulative, o) in ops {
                if cumulative {
                    a.ack_up_to(Offset(o));
                    for x in 0..o { model.insert(x); }
                } else {
                    a.ack(Offset(o)).unwrap();
                    model.insert(o);
                }
                a.check_invariants();
                for x in 0..70 {
                    prop_assert_eq!(a.is_acked(Offset(x)), model.contains(&x), "offset {}", x);
                }
                let prefix = (0..).find(|x| !model.contains(x)).unwrap();
                prop_assert_eq!(a.prefix(), Offset(prefix));
                prop_assert_eq!(a.next_unacked(Offset(0)), Offset(prefix));
            }
        }
    }
}
