//! Resolver discovery: the RUM tag fetches a name made unique by the
//! beacon's id (`<id>.whoami.example.net`); the DNS side sees which
//! resolver asked for it (and the ECS subnet it sent), the collector sees
//! which client sent the beacon with that id. Joined, they say which
//! clients use which resolver, how far apart they are, and whether the
//! resolver sends ECS: when answers by resolver address go wrong.
//!
//! The DNS side records, the collector takes; both are bounded and time
//! is passed in.

use petrel_types::Prefix;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

/// A beacon id: 8 to 32 of `[a-z0-9]` (the tag makes 16). Anything else
/// under the whoami name is not one of ours.
pub const MIN_ID: usize = 8;
pub const MAX_ID: usize = 32;

pub fn valid_id(id: &[u8]) -> bool {
    (MIN_ID..=MAX_ID).contains(&id.len()) && id.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Who asked for an id's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asked {
    pub at_ms: u64,
    pub resolver: IpAddr,
    /// The ECS option's prefix, when the resolver sent one.
    pub ecs: Option<Prefix>,
}

/// Ids seen by the DNS side, waiting for their beacon.
#[derive(Debug)]
pub struct Joins {
    by_id: HashMap<Box<[u8]>, Asked>,
    order: VecDeque<(u64, Box<[u8]>)>,
    max: usize,
    keep_ms: u64,
    /// Records dropped because `max` were waiting.
    pub dropped: u64,
}

impl Joins {
    /// At most `max` ids wait, each for `keep_ms`.
    pub fn new(max: usize, keep_ms: u64) -> Joins {
        Joins {
            by_id: HashMap::new(),
            order: VecDeque::new(),
            max,
            keep_ms,
            dropped: 0,
        }
    }

    fn expire(&mut self, now_ms: u64) {
        while let Some((at, _)) = self.order.front() {
            if at.saturating_add(self.keep_ms) > now_ms {
                break;
            }
            if let Some((at, id)) = self.order.pop_front() {
                // Only if not asked again since (then a newer entry waits).
                if self.by_id.get(&id).is_some_and(|a| a.at_ms == at) {
                    self.by_id.remove(&id);
                }
            }
        }
    }

    /// The DNS side saw `id` asked for. The first resolver to ask is the
    /// one kept: later queries for the same name are its retries or
    /// another resolver's, not the browser's own.
    pub fn record(&mut self, id: &[u8], asked: Asked) {
        self.expire(asked.at_ms);
        if self.by_id.contains_key(id) {
            return;
        }
        if self.by_id.len() >= self.max {
            self.dropped += 1;
            return;
        }
        self.by_id.insert(id.into(), asked);
        self.order.push_back((asked.at_ms, id.into()));
    }

    /// The collector has the beacon of `id`: who asked for its name.
    pub fn take(&mut self, id: &[u8], now_ms: u64) -> Option<Asked> {
        self.expire(now_ms);
        self.by_id.remove(id)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(at_ms: u64, r: &str) -> Asked {
        Asked {
            at_ms,
            resolver: r.parse().unwrap(),
            ecs: None,
        }
    }

    #[test]
    fn ids_are_short_lowercase_alphanumerics() {
        assert!(valid_id(b"k3j4h5g6f7d8s9a0"));
        for bad in [&b"short"[..], b"UPPERCASE1", b"with-dash1", b"", &[b'a'; 33]] {
            assert!(!valid_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_recorded_id_is_taken_once_within_its_time_and_the_store_is_bounded() {
        let mut j = Joins::new(2, 60_000);
        j.record(b"aaaaaaaa", asked(0, "192.0.2.53"));
        // A retry from another resolver does not replace the first.
        j.record(b"aaaaaaaa", asked(10, "198.51.100.53"));
        assert_eq!(j.take(b"aaaaaaaa", 1_000), Some(asked(0, "192.0.2.53")));
        assert_eq!(j.take(b"aaaaaaaa", 1_000), None, "taken once");
        j.record(b"bbbbbbbb", asked(1_000, "192.0.2.53"));
        j.record(b"cccccccc", asked(1_000, "192.0.2.53"));
        j.record(b"dddddddd", asked(1_000, "192.0.2.53"));
        assert_eq!((j.len(), j.dropped), (2, 1));
        // Past its time an id is gone, and makes room.
        assert_eq!(j.take(b"bbbbbbbb", 61_000), None);
        assert!(j.is_empty());
        j.record(b"dddddddd", asked(61_000, "192.0.2.53"));
        assert_eq!(j.len(), 1);
    }
}
