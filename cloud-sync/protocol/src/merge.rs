//! The conflict rules of records that both a node and the cloud may change (a person's
//! profile, their templates and site assignment), one policy for all of them:
//!
//! - every version carries a hybrid logical clock timestamp ([`Hlc`]): wall time, a counter
//!   and the writer's id, so versions are totally ordered and a writer whose clock lags still
//!   orders its edits after what it has seen;
//! - the **last writer wins** by that timestamp, and the losing version is kept in the
//!   record's history, never silently dropped;
//! - an **erasure wins over any edit**, earlier or later (a person erased for privacy must not
//!   come back because a node edited them while offline).
//!
//! Winning is a maximum over a total order (erasure first, then the timestamp), so applying
//! the same versions in any order, any number of times, ends in the same state everywhere
//! (the property test below checks it).
//!
//! Events are not merged: they are immutable facts, deduplicated by id.

use serde::{Deserialize, Serialize};

/// A hybrid logical clock timestamp. Ordered by wall time, then counter, then origin.
#[derive(
    utoipa::ToSchema, Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Hlc {
    /// Milliseconds since the Unix epoch (never behind anything the writer has seen).
    pub ms: u64,
    /// Orders versions within one millisecond.
    pub counter: u32,
    /// Who wrote it (`cloud`, or a node id): breaks the last ties.
    pub origin: String,
}

/// A writer's hybrid logical clock.
#[derive(Debug, Clone)]
pub struct Clock {
    ms: u64,
    counter: u32,
    origin: String,
}

impl Clock {
    /// A clock for `origin` that has seen nothing yet.
    pub fn new(origin: impl Into<String>) -> Self {
        Self {
            ms: 0,
            counter: 0,
            origin: origin.into(),
        }
    }

    /// A clock resumed from the last timestamp it issued or saw (kept across restarts).
    pub fn resume(origin: impl Into<String>, last: Option<&Hlc>) -> Self {
        let mut clock = Self::new(origin);
        if let Some(last) = last {
            clock.ms = last.ms;
            clock.counter = last.counter;
        }
        clock
    }

    /// The timestamp of a local change at wall time `wall_ms`: after everything issued or seen.
    pub fn tick(&mut self, wall_ms: u64) -> Hlc {
        if wall_ms > self.ms {
            self.ms = wall_ms;
            self.counter = 0;
        } else {
            self.bump();
        }
        self.stamp()
    }

    /// Takes in a timestamp received from elsewhere, so that later local changes order after it.
    pub fn observe(&mut self, seen: &Hlc, wall_ms: u64) {
        let ms = self.ms.max(seen.ms).max(wall_ms);
        if ms == self.ms && ms == seen.ms {
            self.counter = self.counter.max(seen.counter);
            self.bump();
        } else if ms == self.ms {
            self.bump();
        } else if ms == seen.ms {
            self.ms = ms;
            self.counter = seen.counter;
            self.bump();
        } else {
            self.ms = ms;
            self.counter = 0;
        }
    }

    fn bump(&mut self) {
        match self.counter.checked_add(1) {
            Some(c) => self.counter = c,
            // Four billion changes within one millisecond: borrow the next millisecond.
            None => {
                self.ms += 1;
                self.counter = 0;
            }
        }
    }

    fn stamp(&self) -> Hlc {
        Hlc {
            ms: self.ms,
            counter: self.counter,
            origin: self.origin.clone(),
        }
    }
}

/// What a version says of its record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change<T> {
    /// The record's new state.
    Edit { state: T },
    /// The record is erased, for good.
    Erase,
}

/// One version of a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version<T> {
    pub hlc: Hlc,
    #[serde(flatten)]
    pub change: Change<T>,
}

impl<T> Version<T> {
    fn is_erase(&self) -> bool {
        matches!(self.change, Change::Erase)
    }

    /// Whether `self` wins over `other`: an erasure over an edit, else the later timestamp.
    pub fn beats(&self, other: &Version<T>) -> bool {
        (self.is_erase(), &self.hlc) > (other.is_erase(), &other.hlc)
    }
}

/// Which side a merge kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merged {
    /// The incoming version won; the one it replaced (if any) went to the history.
    Incoming,
    /// The current version won; the incoming one went to the history.
    Current,
    /// The incoming version is the current one already (a re-delivery): nothing changes.
    Known,
}

/// A record's current version and the versions it beat, oldest first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Register<T> {
    pub current: Option<Version<T>>,
    pub history: Vec<Version<T>>,
}

impl<T: PartialEq> Register<T> {
    /// Merges `incoming`; a version seen before (current or in the history) changes nothing.
    pub fn apply(&mut self, incoming: Version<T>) -> Merged {
        let Some(current) = &self.current else {
            self.current = Some(incoming);
            return Merged::Incoming;
        };
        if *current == incoming || self.history.contains(&incoming) {
            return Merged::Known;
        }
        if incoming.beats(current) {
            if let Some(old) = self.current.replace(incoming) {
                self.history.push(old);
            }
            Merged::Incoming
        } else {
            self.history.push(incoming);
            Merged::Current
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hlc(ms: u64, counter: u32, origin: &str) -> Hlc {
        Hlc {
            ms,
            counter,
            origin: origin.into(),
        }
    }

    fn edit(h: Hlc, name: &str) -> Version<String> {
        Version {
            hlc: h,
            change: Change::Edit { state: name.into() },
        }
    }

    #[test]
    fn a_lagging_clock_still_orders_after_what_it_saw() {
        let mut node = Clock::new("node-1");
        let a = node.tick(1_000);
        let b = node.tick(1_000);
        assert!(b > a, "same millisecond: the counter moves");
        // The cloud is 5 s ahead; the node sees one of its versions, then edits.
        node.observe(&hlc(6_000, 3, "cloud"), 1_001);
        let c = node.tick(1_002);
        assert!(c > hlc(6_000, 3, "cloud"), "{c:?}");
        // The wall clock steps back (NTP): timestamps still grow.
        let d = node.tick(500);
        assert!(d > c);
        let resumed = Clock::resume("node-1", Some(&d)).tick(0);
        assert!(resumed > d, "a restart does not go back in time");
    }

    #[test]
    fn the_later_edit_wins_and_the_loser_is_kept() {
        let mut r = Register::default();
        assert_eq!(r.apply(edit(hlc(2, 0, "cloud"), "Ann")), Merged::Incoming);
        assert_eq!(r.apply(edit(hlc(1, 0, "node"), "Anne")), Merged::Current);
        assert_eq!(r.apply(edit(hlc(1, 0, "node"), "Anne")), Merged::Known);
        assert_eq!(r.apply(edit(hlc(3, 0, "node"), "Annie")), Merged::Incoming);
        assert_eq!(r.current, Some(edit(hlc(3, 0, "node"), "Annie")));
        assert_eq!(r.history.len(), 2, "{:?}", r.history);
    }

    #[test]
    fn an_erasure_wins_over_a_later_edit() {
        let mut r = Register::default();
        let erase = Version::<String> {
            hlc: hlc(1, 0, "cloud"),
            change: Change::Erase,
        };
        r.apply(erase.clone());
        assert_eq!(r.apply(edit(hlc(9, 0, "node"), "Ann")), Merged::Current);
        assert_eq!(r.current, Some(erase));
    }

    fn version() -> impl Strategy<Value = Version<String>> {
        (
            0u64..20,
            0u32..3,
            prop::sample::select(vec!["cloud", "node-1", "node-2"]),
            prop::option::weighted(0.15, Just(())),
            "[a-c]{1,2}",
        )
            .prop_map(|(ms, counter, origin, erase, name)| Version {
                hlc: hlc(ms, counter, origin),
                change: match erase {
                    Some(()) => Change::Erase,
                    None => Change::Edit { state: name },
                },
            })
    }

    proptest! {
        /// The node and the cloud receive the same versions in different orders, some twice:
        /// both end on the same version, the one the rules pick, and every other distinct
        /// version is in the history (none silently dropped).
        #[test]
        fn any_interleaving_converges(
            // A writer never issues one timestamp twice: one version per timestamp.
            versions in prop::collection::vec(version(), 1..12).prop_map(|mut v| {
                let mut seen = std::collections::HashSet::new();
                v.retain(|x| seen.insert(x.hlc.clone()));
                v
            }),
            shuffle in any::<u64>(),
            repeats in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        ) {
            let mut node = Register::default();
            for v in &versions {
                node.apply(v.clone());
            }
            let mut other: Vec<Version<String>> = versions.clone();
            let mut state = shuffle | 1;
            for i in (1..other.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                other.swap(i, (state % (i as u64 + 1)) as usize);
            }
            for r in &repeats {
                other.push(r.get(&versions).clone());
            }
            let mut cloud = Register::default();
            for v in other {
                cloud.apply(v);
            }
            prop_assert_eq!(&node.current, &cloud.current);
            let winner = node.current.clone().expect("a version");
            for v in &versions {
                prop_assert!(!v.beats(&winner), "{:?} should have won over {:?}", v, winner);
                if *v != winner {
                    prop_assert!(node.history.contains(v) && cloud.history.contains(v));
                }
            }
        }
    }
}
