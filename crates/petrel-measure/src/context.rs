//! What an alert watches, and the routing changes that belong with it:
//! an alert on a network's latency to a POP comes with the changes of
//! that POP's best AS paths towards the network in the time before it
//! opened, the first thing an operator looks for ("did the route move?").

use petrel_types::Prefix;
use std::collections::VecDeque;

/// What an alert watches: a map unit, or every client of an origin AS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Watched {
    Unit(Prefix),
    Asn(u32),
}

impl Watched {
    pub fn by(self) -> &'static str {
        match self {
            Watched::Unit(_) => "unit",
            Watched::Asn(_) => "asn",
        }
    }

    /// Whether a path change of `prefix`, whose old and new paths end in
    /// `origins`, concerns this network: a prefix that holds the unit or
    /// lies in it, or a path to or from the AS.
    pub fn concerns(self, prefix: &Prefix, origins: [Option<u32>; 2]) -> bool {
        match self {
            Watched::Unit(u) => u.contains(prefix) || prefix.contains(&u),
            Watched::Asn(a) => origins.contains(&Some(a)),
        }
    }
}

impl std::fmt::Display for Watched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Watched::Unit(p) => write!(f, "{p}"),
            Watched::Asn(a) => write!(f, "AS{a}"),
        }
    }
}

/// A view's best path for a prefix changed at `at_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub at_ms: u64,
    pub view: String,
    pub prefix: Prefix,
    /// Origin AS of the old and of the new path (None: no route).
    pub origins: [Option<u32>; 2],
    /// The paths as text; empty: no route.
    pub old_path: String,
    pub new_path: String,
}

/// The latest path changes, oldest first, at most `max`.
#[derive(Debug)]
pub struct Changes {
    ring: VecDeque<Change>,
    max: usize,
}

impl Changes {
    pub fn new(max: usize) -> Changes {
        Changes {
            ring: VecDeque::new(),
            max,
        }
    }

    /// Changes in time order; past `max`, the oldest go.
    pub fn extend(&mut self, changes: impl IntoIterator<Item = Change>) {
        for c in changes {
            if self.ring.len() >= self.max {
                self.ring.pop_front();
            }
            self.ring.push_back(c);
        }
    }

    /// The changes of `view` that concern `w`, from `window_ms` before
    /// `now_ms`, the latest `most` of them, oldest first.
    pub fn before(&self, w: Watched, view: &str, now_ms: u64, window_ms: u64, most: usize) -> Vec<&Change> {
        let mut out: Vec<&Change> = self
            .ring
            .iter()
            .rev()
            .take_while(|c| c.at_ms.saturating_add(window_ms) >= now_ms)
            .filter(|c| c.view == view && w.concerns(&c.prefix, c.origins))
            .take(most)
            .collect();
        out.reverse();
        out
    }

    pub fn len(&self) -> usize {
        self.ring.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    fn change(at_ms: u64, view: &str, prefix: &str, origins: [Option<u32>; 2]) -> Change {
        Change {
            at_ms,
            view: view.into(),
            prefix: p(prefix),
            origins,
            old_path: String::new(),
            new_path: String::new(),
        }
    }

    #[test]
    fn an_alert_gets_the_recent_changes_of_its_pop_towards_its_network() {
        let mut c = Changes::new(4);
        c.extend([
            change(1_000, "iad", "100.70.0.0/16", [Some(64500), Some(64500)]),
            change(50_000, "ams", "100.70.0.0/16", [Some(64500), Some(64500)]),
            change(60_000, "iad", "198.51.100.0/24", [Some(64999), None]),
            change(70_000, "iad", "100.70.8.0/24", [None, Some(64501)]),
            change(80_000, "iad", "100.0.0.0/8", [Some(3356), Some(3356)]),
        ]);
        assert_eq!(c.len(), 4, "bounded: the oldest went");
        let unit = Watched::Unit(p("100.70.0.0/16"));
        let seen: Vec<(u64, Prefix)> = c
            .before(unit, "iad", 90_000, 3_600_000, 10)
            .iter()
            .map(|x| (x.at_ms, x.prefix))
            .collect();
        // A more specific inside the unit, and a covering prefix: both;
        // another view's change, another network's: neither.
        assert_eq!(seen, [(70_000, p("100.70.8.0/24")), (80_000, p("100.0.0.0/8"))]);
        // By AS: a path that starts or stops ending in it.
        let asn = Watched::Asn(64501);
        assert_eq!(c.before(asn, "iad", 90_000, 3_600_000, 10).len(), 1);
        // Too old for the window; and the latest `most` only.
        assert!(c.before(unit, "iad", 90_000 + 3_600_000, 1_000, 10).is_empty());
        assert_eq!(c.before(unit, "iad", 90_000, 3_600_000, 1)[0].at_ms, 80_000);
        assert_eq!((unit.by(), unit.to_string()), ("unit", "100.70.0.0/16".to_string()));
        assert_eq!((asn.by(), asn.to_string()), ("asn", "AS64501".to_string()));
    }
}
