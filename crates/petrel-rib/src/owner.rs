//! The one owner of routing state, without IO: every POP's view and the
//! attribute pool, fed alike by sessions, BMP-monitored peers and the peers
//! of MRT dumps (each a slot that comes up and ends its table), and
//! the rules of when the views are compiled and published. Time comes in
//! as `now`; what the caller must do comes out as [`Event`]s and as what
//! [`Owner::tick`] says is due.
//!
//! - **Initial sync.** A peer's first table stays out of the published
//!   views until it is complete: its End-of-RIB for every family it
//!   negotiated (RFC 4724 §2), or `sync_quiet` without an UPDATE (peers
//!   that send no marker), and at most `sync_max` after it came up. Half a
//!   table would move answers for the prefixes not yet received, and
//!   compiling a view over and over while a million routes arrive costs
//!   more than their arrival. Other peers' changes are published meanwhile.
//! - **Max-prefix.** Counted here (distinct routes); past the limit the
//!   peer's routes are dropped and the caller sends Cease/1 (RFC 4486).
//! - **Batching and pacing.** A batch is due `batch` after its first change,
//!   and never sooner after the last publication than that one took, so a
//!   constant trickle of updates cannot keep a core busy compiling. A change
//!   that completes a whole table (an End-of-RIB, a dump) is due at once.
//! - **Warm-up.** At start, nothing is published until every configured
//!   feed (sessions, each MRT dump's peers, one or more peers of each BMP
//!   router) has ended its initial table, or until the warm-up bound: views of some POPs but not yet of others
//!   would send clients to the POPs that happen to be in. [`Event::Warm`]
//!   says when it ended, and why.
//! - **Reporting.** Route counts are due every `report_every` while routes
//!   arrive, and after the last change of a burst.

use crate::{AttrPool, PeerId, PeerInfo, Route, View};
use petrel_bgp_wire::{Afi, ParsedUpdate};
use petrel_mapping::{BgpData, BgpDataBuilder};
use petrel_types::{PopIdx, Prefix};
use rustc_hash::FxHashMap;
use std::time::{Duration, Instant};

/// A feed's handle: one per session, BMP-monitored peer or MRT peer,
/// never reused.
pub type Slot = u32;

/// A view's index in the owner (views are made as POPs first get a feed,
/// and named after their POP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ViewId(pub u16);

impl ViewId {
    fn index(self) -> usize {
        self.0 as usize
    }
}

/// The owner's clock rules.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// A batch is published this long after its first change.
    pub batch: Duration,
    /// No UPDATE for this long ends an initial sync without End-of-RIB.
    pub sync_quiet: Duration,
    /// An initial sync is published after this long at the latest.
    pub sync_max: Duration,
    /// How often route counts are due while routes arrive.
    pub report_every: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            batch: Duration::from_millis(1000),
            sync_quiet: Duration::from_secs(3),
            sync_max: Duration::from_secs(60),
            report_every: Duration::from_millis(10),
        }
    }
}

/// What the caller must do (or may log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The peer went past one of its limits: its routes were dropped; end
    /// its session with the Cease the limit calls for (RFC 4486). Its
    /// UPDATEs are ignored until it comes up again.
    OverLimit {
        slot: Slot,
        name: String,
        exceeded: Exceeded,
    },
    /// A peer's initial table is complete and goes into the next batch.
    SyncEnded {
        name: String,
        routes: usize,
        took: Duration,
        end_of_rib: bool,
    },
    /// The warm-up at start ended: the first publication is due now.
    Warm { took: Duration, end: WarmEnd },
    /// The feeds the warm-up still waits for changed (names, for status).
    Warming { waiting: Vec<String> },
}

/// Why the warm-up at start ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WarmEnd {
    /// Every feed's initial table is in.
    Complete,
    /// The bound passed; these feeds (or BMP routers) were not in.
    TimedOut { missing: Vec<String> },
}

/// What a feed may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Routes (prefix and path id).
    pub routes: u32,
    /// Bytes of attribute sets its routes hold, each route counted whole.
    pub attr_bytes: usize,
}

/// Which limit a feed went past.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exceeded {
    /// Cease/1, "Maximum Number of Prefixes Reached".
    Routes { routes: usize, max: u32 },
    /// Cease/8, "Out of Resources".
    AttrBytes { bytes: usize, max: usize },
}

/// A feed's counts, for the board.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedCounts {
    pub name: String,
    pub routes: u64,
    pub attr_bytes: u64,
    /// Paths ignored for being past `MAX_PATHS_PER_PREFIX`.
    pub refused_paths: u64,
}

/// What [`Owner::tick`] found due.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Due {
    pub publish: bool,
    pub report: bool,
}

/// A view's routes for the most specific prefix covering an address (none
/// when nothing covers it), each with whether it is the best.
pub type RoutesAt<'a> = (&'a View, Option<Prefix>, Vec<(Route, bool)>);

/// A batch compiled for the mapping engine.
pub struct Publication {
    pub data: BgpData,
    /// Best routes in the published views.
    pub routes: usize,
    /// The batch's first change.
    pub since: Instant,
}

struct InitialSync {
    started: Instant,
    last_update: Instant,
    /// Families whose End-of-RIB has not come yet.
    waiting: [bool; 2],
}

impl InitialSync {
    fn deadline(&self, t: &Timing) -> Instant {
        (self.last_update + t.sync_quiet).min(self.started + t.sync_max)
    }
}

struct Warmup {
    started: Instant,
    deadline: Instant,
    /// Feeds whose initial table is not in yet.
    waiting: rustc_hash::FxHashSet<Slot>,
    /// The feeds to wait for, and whether one has been added: a session's
    /// name, or the stem of the feeds of a BMP router or an MRT dump
    /// (`<stem>/<peer>`).
    expected: Vec<(String, bool)>,
}

struct PeerSlot {
    name: String,
    view: ViewId,
    id: PeerId,
    limits: Limits,
    over_limit: bool,
    sync: Option<InitialSync>,
}

pub struct Owner {
    views: Vec<View>,
    pool: AttrPool,
    slots: FxHashMap<Slot, PeerSlot>,
    /// POP names by index: views are published under these indexes.
    pops: Vec<String>,
    timing: Timing,
    dirty_since: Option<Instant>,
    /// No publication before this (pacing).
    not_before: Option<Instant>,
    last_report: Option<Instant>,
    /// Route counts changed since they were last reported.
    unreported: bool,
    /// Publish the prefix boundaries too (the latency policy's BGP units).
    index_prefixes: bool,
    warmup: Option<Warmup>,
}

impl Owner {
    pub fn new(pops: Vec<String>, timing: Timing) -> Owner {
        Owner {
            views: Vec::new(),
            pool: AttrPool::default(),
            slots: FxHashMap::default(),
            pops,
            timing,
            dirty_since: None,
            not_before: None,
            last_report: None,
            unreported: false,
            index_prefixes: false,
            warmup: None,
        }
    }

    /// Hold publications until each of `expected` has been added (a
    /// session by name; a BMP router or an MRT dump by the stem of its
    /// feeds' names, `<stem>/<peer>`) and every feed added from now on has
    /// its initial table in, or until `deadline`.
    pub fn warm_up(&mut self, now: Instant, deadline: Instant, expected: Vec<String>) {
        self.warmup = Some(Warmup {
            started: now,
            deadline,
            waiting: Default::default(),
            expected: expected.into_iter().map(|e| (e, false)).collect(),
        });
    }

    /// Whether publications are held for the warm-up.
    pub fn warming(&self) -> bool {
        self.warmup.is_some()
    }

    fn waiting_names(&self) -> Vec<String> {
        let Some(w) = &self.warmup else { return Vec::new() };
        let mut v: Vec<String> = w
            .waiting
            .iter()
            .filter_map(|s| self.slots.get(s).map(|p| p.name.clone()))
            .chain(w.expected.iter().filter(|e| !e.1).map(|e| e.0.clone()))
            .collect();
        v.sort();
        v
    }

    /// A feed is in (or gone): end the warm-up if it was the last.
    fn warm_progress(&mut self, slot: Option<Slot>, now: Instant, events: &mut Vec<Event>) {
        let Some(w) = &mut self.warmup else { return };
        let changed = slot.is_some_and(|s| w.waiting.remove(&s));
        let end = if w.waiting.is_empty() && w.expected.iter().all(|e| e.1) {
            Some(WarmEnd::Complete)
        } else if now >= w.deadline {
            Some(WarmEnd::TimedOut {
                missing: self.waiting_names(),
            })
        } else {
            None
        };
        match end {
            Some(end) => {
                let took = now.saturating_duration_since(self.warmup.take().map_or(now, |w| w.started));
                events.push(Event::Warm { took, end });
                self.touch_due(now);
            }
            None if changed => events.push(Event::Warming {
                waiting: self.waiting_names(),
            }),
            None => {}
        }
    }

    pub fn views(&self) -> &[View] {
        &self.views
    }

    pub fn pool(&self) -> &AttrPool {
        &self.pool
    }

    fn view_for(&mut self, pop: &str) -> ViewId {
        let i = match self.views.iter().position(|v| v.name == pop) {
            Some(i) => i,
            None => {
                self.views.push(View::new(pop));
                self.views.len() - 1
            }
        };
        ViewId(i as u16)
    }

    fn touch(&mut self, now: Instant) {
        self.dirty_since.get_or_insert(now);
    }

    /// A change that completes a whole table needs no batch window of its
    /// own: it is due now (pacing still applies).
    fn touch_due(&mut self, now: Instant) {
        let due = now.checked_sub(self.timing.batch).unwrap_or(now);
        self.dirty_since = Some(self.dirty_since.map_or(due, |d| d.min(due)));
    }

    fn counts_changed(&mut self) {
        self.unreported = true;
    }

    /// Counts are due at once (a table ended, a peer went down).
    fn report_now(&mut self) {
        self.unreported = true;
        self.last_report = None;
    }

    /// A configured feed: its routes go to the view of `pop`.
    pub fn add_peer(&mut self, slot: Slot, name: String, pop: &str, info: PeerInfo, limits: Limits) {
        let view = self.view_for(pop);
        let id = self.views[view.index()].add_peer(info);
        self.slots.insert(
            slot,
            PeerSlot {
                name,
                view,
                id,
                limits,
                over_limit: false,
                sync: None,
            },
        );
        if let (Some(w), Some(name)) = (&mut self.warmup, self.slots.get(&slot).map(|s| &s.name)) {
            // Only the feeds it was told of: not a peer added by a reload,
            // nor one that only receives announcements.
            let of = |e: &String| name == e || name.strip_prefix(e.as_str()).is_some_and(|r| r.starts_with('/'));
            if let Some(e) = w.expected.iter_mut().find(|(e, _)| of(e)) {
                e.1 = true;
                w.waiting.insert(slot);
            }
        }
    }

    /// A feed removed from the config; its name, if it was known.
    pub fn remove_peer(&mut self, slot: Slot, now: Instant) -> Option<String> {
        if let Some(w) = &mut self.warmup {
            w.waiting.remove(&slot);
        }
        let s = self.slots.remove(&slot)?;
        if self.views[s.view.index()].remove_peer(s.id, &mut self.pool) > 0 {
            self.touch(now);
        }
        Some(s.name)
    }

    /// The session came up with these families (IPv4, IPv6 unicast): each
    /// ends its initial table with an End-of-RIB.
    pub fn peer_up(&mut self, slot: Slot, info: PeerInfo, families: [bool; 2], now: Instant) {
        let Some(s) = self.slots.get_mut(&slot) else { return };
        s.over_limit = false;
        let syncing = families[0] || families[1];
        if let (false, Some(w)) = (syncing, &mut self.warmup) {
            // Nothing negotiated: no table to wait for.
            w.waiting.remove(&slot);
        }
        self.views[s.view.index()].set_peer(s.id, info);
        self.views[s.view.index()].set_loading(s.id, syncing);
        s.sync = syncing.then_some(InitialSync {
            started: now,
            last_update: now,
            waiting: families,
        });
    }

    /// The session went down: its routes go. Its name, if known.
    pub fn peer_down(&mut self, slot: Slot, now: Instant) -> Option<&str> {
        let s = self.slots.get_mut(&slot)?;
        s.sync = None;
        self.views[s.view.index()].set_loading(s.id, false);
        if self.views[s.view.index()].drop_peer_routes(s.id, &mut self.pool) > 0 {
            self.dirty_since.get_or_insert(now);
        }
        Some(&self.slots[&slot].name)
    }

    /// The UPDATEs of one read, in order, each with its attribute hash
    /// (`attr_hash`, 0 for those that announce nothing).
    pub fn update(
        &mut self,
        slot: Slot,
        updates: &[ParsedUpdate],
        hashes: &[u64],
        now: Instant,
        events: &mut Vec<Event>,
    ) {
        let Some(s) = self.slots.get_mut(&slot) else { return };
        let view = &mut self.views[s.view.index()];
        let mut changed = 0;
        for (u, hash) in updates.iter().zip(hashes) {
            if s.over_limit {
                break;
            }
            changed += view.apply_hashed(s.id, u, *hash, &mut self.pool);
            if let (Some(y), Some(afi)) = (s.sync.as_mut(), u.end_of_rib) {
                y.waiting[(afi == Afi::Ipv6) as usize] = false;
            }
            let (routes, bytes) = (view.prefix_count(s.id), view.attr_bytes(s.id));
            let exceeded = if routes > s.limits.routes as usize {
                Some(Exceeded::Routes {
                    routes,
                    max: s.limits.routes,
                })
            } else if bytes > s.limits.attr_bytes {
                Some(Exceeded::AttrBytes {
                    bytes,
                    max: s.limits.attr_bytes,
                })
            } else {
                None
            };
            if let Some(exceeded) = exceeded {
                s.over_limit = true;
                s.sync = None;
                view.set_loading(s.id, false);
                view.drop_peer_routes(s.id, &mut self.pool);
                changed += 1;
                events.push(Event::OverLimit {
                    slot,
                    name: s.name.clone(),
                    exceeded,
                });
            }
        }
        match s.sync.as_mut() {
            Some(y) if y.waiting == [false, false] => self.end_sync(slot, true, now, events),
            // A syncing peer's routes wait for the end of its table.
            Some(y) => y.last_update = now,
            None if changed > 0 => self.touch(now),
            None => {}
        }
        self.counts_changed();
    }

    fn end_sync(&mut self, slot: Slot, end_of_rib: bool, now: Instant, events: &mut Vec<Event>) {
        let Some(s) = self.slots.get_mut(&slot) else { return };
        let Some(y) = s.sync.take() else { return };
        self.views[s.view.index()].set_loading(s.id, false);
        events.push(Event::SyncEnded {
            name: s.name.clone(),
            routes: self.views[s.view.index()].prefix_count(s.id),
            took: now.saturating_duration_since(y.started),
            end_of_rib,
        });
        self.report_now();
        self.touch_due(now);
        self.warm_progress(Some(slot), now, events);
    }

    /// The POP list changed (a reload): views are republished under the new
    /// indexes.
    /// Whether publications carry the prefix boundaries; a change is
    /// published at the next batch.
    pub fn set_index_prefixes(&mut self, on: bool, now: Instant) {
        if on != self.index_prefixes {
            self.index_prefixes = on;
            self.touch(now);
        }
    }

    pub fn set_pops(&mut self, pops: Vec<String>, now: Instant) {
        self.pops = pops;
        self.touch(now);
    }

    /// Time until something is due; None: nothing is pending.
    pub fn next_wake(&self, now: Instant) -> Option<Duration> {
        let syncs = self
            .slots
            .values()
            .filter_map(|s| s.sync.as_ref())
            .map(|y| y.deadline(&self.timing).saturating_duration_since(now))
            .min();
        let warm = self.warmup.as_ref().map(|w| {
            if w.waiting.is_empty() && w.expected.iter().all(|e| e.1) {
                Duration::ZERO
            } else {
                w.deadline.saturating_duration_since(now)
            }
        });
        let batch = self
            .dirty_since
            .filter(|_| self.warmup.is_none())
            .map(|_| self.until_due(now));
        let report = self.unreported.then(|| match self.last_report {
            None => Duration::ZERO,
            Some(t) => (t + self.timing.report_every).saturating_duration_since(now),
        });
        [syncs, warm, batch, report].into_iter().flatten().min()
    }

    /// Time left before the pending batch is due (see the module's rules).
    fn until_due(&self, now: Instant) -> Duration {
        let Some(t) = self.dirty_since else {
            return Duration::MAX;
        };
        let batch = self.timing.batch.saturating_sub(now.saturating_duration_since(t));
        let pace = self
            .not_before
            .map_or(Duration::ZERO, |nb| nb.saturating_duration_since(now));
        batch.max(pace)
    }

    /// Route counts are due for the board.
    pub fn report_due(&self, now: Instant) -> bool {
        self.unreported
            && self
                .last_report
                .is_none_or(|t| now.saturating_duration_since(t) >= self.timing.report_every)
    }

    /// End the initial syncs that timed out, and say what is due.
    pub fn tick(&mut self, now: Instant, events: &mut Vec<Event>) -> Due {
        let timing = self.timing;
        let done: Vec<Slot> = self
            .slots
            .iter()
            .filter(|(_, s)| s.sync.as_ref().is_some_and(|y| y.deadline(&timing) <= now))
            .map(|(k, _)| *k)
            .collect();
        for slot in done {
            self.end_sync(slot, false, now, events);
        }
        self.warm_progress(None, now, events);
        Due {
            publish: self.warmup.is_none() && self.dirty_since.is_some() && self.until_due(now).is_zero(),
            report: self.report_due(now),
        }
    }

    /// Every feed's route count (sessions, BMP peers, MRT peers), for the
    /// board; marks them reported.
    pub fn counts(&mut self, now: Instant) -> Vec<FeedCounts> {
        self.last_report = Some(now);
        self.unreported = false;
        self.slots
            .values()
            .map(|s| {
                let v = &self.views[s.view.index()];
                FeedCounts {
                    name: s.name.clone(),
                    routes: v.prefix_count(s.id) as u64,
                    attr_bytes: v.attr_bytes(s.id) as u64,
                    refused_paths: v.refused_paths(s.id),
                }
            })
            .collect()
    }

    /// Compile the pending batch: per view (of a POP that exists), the best
    /// route of every prefix, leaving out peers whose initial table is still
    /// arriving. None when nothing changed.
    pub fn publish(&mut self) -> Option<Publication> {
        let since = self.dirty_since.take()?;
        let mut b = BgpDataBuilder::new();
        // Attribute sets are interned, so their id names the path.
        let mut ids: Vec<u32> = Vec::new();
        let mut total = 0;
        let mut prefixes: Vec<Prefix> = Vec::new();
        for v in &mut self.views {
            v.compact();
        }
        for (vi, v) in self.views.iter().enumerate() {
            let vi = ViewId(vi as u16);
            let Some(pop) = self.pops.iter().position(|p| *p == v.name) else {
                continue;
            };
            let syncing: Vec<PeerId> = self
                .slots
                .values()
                .filter(|s| s.view == vi && s.sync.is_some())
                .map(|s| s.id)
                .collect();
            let mut vb = b.view_builder(v.name.clone(), PopIdx(pop as u16));
            let pool = &self.pool;
            v.for_each_best(pool, &syncing, |prefix, r| {
                let k = r.attrs as usize;
                if ids.len() <= k {
                    ids.resize(k + 1, u32::MAX);
                }
                if ids[k] == u32::MAX {
                    let a = pool.get(r.attrs);
                    ids[k] = vb.path_id(a.asns(), a.as_path_len() as u32);
                }
                vb.push(prefix, ids[k]);
                if self.index_prefixes {
                    prefixes.push(prefix);
                }
                total += 1;
            });
            vb.finish();
        }
        self.report_now();
        if self.index_prefixes {
            b.set_prefixes(prefixes);
        }
        Some(Publication {
            data: b.build(),
            routes: total,
            since,
        })
    }

    /// A publication that began at `started` was served at `now`: the next
    /// one waits at least as long.
    pub fn published(&mut self, started: Instant, now: Instant) {
        self.not_before = Some(now + now.saturating_duration_since(started));
    }

    /// The most specific route covering `client` in each view (or one), all
    /// routes of that prefix with the best first.
    pub fn routes_at(&self, client: &Prefix, only: Option<&str>) -> Vec<RoutesAt<'_>> {
        let mut out = Vec::new();
        for v in &self.views {
            if only.is_some_and(|o| o != v.name) {
                continue;
            }
            let m = v.longest_match(client, &self.pool);
            let mut routes = Vec::new();
            if let Some((p, best)) = &m {
                for r in v.routes(p) {
                    routes.push((r, r == *best));
                }
                routes.sort_by_key(|(_, b)| !b);
            }
            out.push((v, m.map(|(p, _)| p), routes));
        }
        out
    }
}

#[cfg(test)]
// Time is driven by hand from an arbitrary origin.
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use crate::tests::{attrs, upd};
    use std::net::{IpAddr, Ipv4Addr};

    fn announce(prefixes: &[&str], path: &[u32]) -> ParsedUpdate {
        upd(prefixes, attrs(path, None, None))
    }

    fn eor(afi: Afi) -> ParsedUpdate {
        ParsedUpdate {
            end_of_rib: Some(afi),
            ..Default::default()
        }
    }

    fn info(asn: u32) -> PeerInfo {
        PeerInfo {
            name: format!("p{asn}"),
            asn,
            bgp_id: asn,
            address: IpAddr::V4(Ipv4Addr::from(asn)),
            ibgp: false,
        }
    }

    fn feed(o: &mut Owner, slot: Slot, us: &[ParsedUpdate], now: Instant) -> Vec<Event> {
        let hashes: Vec<u64> = us
            .iter()
            .map(|u| {
                if u.announced.is_empty() {
                    0
                } else {
                    crate::attr_hash(&u.attrs)
                }
            })
            .collect();
        let mut ev = Vec::new();
        o.update(slot, us, &hashes, now, &mut ev);
        ev
    }

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    /// An owner with one view `ams` (POP 0) and a peer in it at slot 1.
    const NO_LIMIT: Limits = Limits {
        routes: u32::MAX,
        attr_bytes: usize::MAX,
    };

    fn owner(routes: Option<u32>) -> Owner {
        let mut o = Owner::new(vec!["ams".into()], Timing::default());
        let limits = Limits {
            routes: routes.unwrap_or(u32::MAX),
            ..NO_LIMIT
        };
        o.add_peer(1, "a".into(), "ams", info(64500), limits);
        o
    }

    fn routes_of(o: &mut Owner, t: Instant) -> Vec<(String, u64)> {
        o.counts(t).into_iter().map(|c| (c.name, c.routes)).collect()
    }

    fn published_prefixes(p: &Publication) -> usize {
        p.data.views.iter().map(|v| v.routes).sum()
    }

    #[test]
    fn an_initial_table_is_published_whole_at_its_end_of_rib() {
        let t0 = Instant::now();
        let mut o = owner(None);
        o.peer_up(1, info(64500), [true, true], t0);
        assert!(feed(
            &mut o,
            1,
            &[announce(&["10.0.0.0/8", "11.0.0.0/8"], &[64500])],
            ms(t0, 10)
        )
        .is_empty());
        // Nothing to publish while the table arrives; the next wake is the
        // quiet deadline of the sync.
        let mut ev = Vec::new();
        assert!(!o.tick(ms(t0, 10), &mut ev).publish);
        assert_eq!(o.next_wake(ms(t0, 20)).map(|d| d.as_millis()), Some(0), "counts due");
        o.counts(ms(t0, 20));
        assert_eq!(o.next_wake(ms(t0, 20)), Some(Duration::from_millis(2990)));
        // IPv4's End-of-RIB alone does not end it; IPv6's does, and the
        // batch is due at once.
        assert!(feed(&mut o, 1, &[eor(Afi::Ipv4)], ms(t0, 30)).is_empty());
        let ev = feed(&mut o, 1, &[eor(Afi::Ipv6)], ms(t0, 40));
        assert_eq!(
            ev,
            [Event::SyncEnded {
                name: "a".into(),
                routes: 2,
                took: Duration::from_millis(40),
                end_of_rib: true
            }]
        );
        let mut ev = Vec::new();
        assert!(o.tick(ms(t0, 40), &mut ev).publish);
        let p = o.publish().unwrap();
        assert_eq!(published_prefixes(&p), 2);
        assert_eq!(p.routes, 2);
    }

    #[test]
    fn a_table_without_end_of_rib_ends_when_quiet_or_at_the_latest_bound() {
        let t0 = Instant::now();
        let mut o = owner(None);
        o.peer_up(1, info(64500), [true, false], t0);
        feed(&mut o, 1, &[announce(&["10.0.0.0/8"], &[64500])], ms(t0, 1000));
        let mut ev = Vec::new();
        assert!(!o.tick(ms(t0, 3999), &mut ev).publish);
        assert!(ev.is_empty());
        assert!(o.tick(ms(t0, 4000), &mut ev).publish);
        assert!(matches!(
            &ev[..],
            [Event::SyncEnded {
                end_of_rib: false,
                routes: 1,
                ..
            }]
        ));
        // A peer that never pauses is published after sync_max.
        let mut o = owner(None);
        o.peer_up(1, info(64500), [true, false], t0);
        for s in 0..70u64 {
            feed(
                &mut o,
                1,
                &[announce(&["10.0.0.0/8"], &[64500, s as u32])],
                ms(t0, s * 1000),
            );
            let mut ev = Vec::new();
            let due = o.tick(ms(t0, s * 1000), &mut ev);
            assert_eq!(due.publish, s >= 60, "second {s}");
            if due.publish {
                break;
            }
        }
    }

    #[test]
    fn a_syncing_peer_is_left_out_while_others_are_published() {
        let t0 = Instant::now();
        let mut o = owner(None);
        o.add_peer(2, "b".into(), "ams", info(64501), NO_LIMIT);
        o.peer_up(2, info(64501), [false, false], t0);
        feed(&mut o, 2, &[announce(&["12.0.0.0/8"], &[64501])], t0);
        o.peer_up(1, info(64500), [true, false], t0);
        feed(&mut o, 1, &[announce(&["10.0.0.0/8"], &[64500])], t0);
        let mut ev = Vec::new();
        assert!(o.tick(ms(t0, 1000), &mut ev).publish, "b's change after one batch");
        let p = o.publish().unwrap();
        assert_eq!(published_prefixes(&p), 1, "a's table is not in yet");
    }

    #[test]
    fn max_prefix_drops_the_routes_and_asks_for_a_cease() {
        let t0 = Instant::now();
        let mut o = owner(Some(2));
        o.peer_up(1, info(64500), [false, false], t0);
        let ev = feed(
            &mut o,
            1,
            &[
                announce(&["10.0.0.0/8", "11.0.0.0/8"], &[64500]),
                announce(&["12.0.0.0/8"], &[64500]),
                announce(&["13.0.0.0/8"], &[64500]),
            ],
            t0,
        );
        assert_eq!(
            ev,
            [Event::OverLimit {
                slot: 1,
                name: "a".into(),
                exceeded: Exceeded::Routes { routes: 3, max: 2 }
            }]
        );
        assert_eq!(routes_of(&mut o, t0), [("a".to_string(), 0)]);
        // Ignored until the session comes up again.
        feed(&mut o, 1, &[announce(&["14.0.0.0/8"], &[64500])], t0);
        assert_eq!(routes_of(&mut o, t0), [("a".to_string(), 0)]);
        o.peer_up(1, info(64500), [false, false], ms(t0, 60_000));
        feed(&mut o, 1, &[announce(&["14.0.0.0/8"], &[64500])], ms(t0, 60_000));
        assert_eq!(routes_of(&mut o, t0), [("a".to_string(), 1)]);
    }

    #[test]
    fn long_attributes_count_against_the_peer_budget() {
        let t0 = Instant::now();
        let mut o = Owner::new(vec!["ams".into()], Timing::default());
        let limits = Limits {
            routes: u32::MAX,
            attr_bytes: 1 << 20,
        };
        o.add_peer(1, "a".into(), "ams", info(64500), limits);
        o.peer_up(1, info(64500), [false, false], t0);
        // Short paths: a thousand routes fit many times over.
        let short: Vec<ParsedUpdate> = (0..1000u32)
            .map(|i| announce(&[&format!("10.{}.{}.0/24", i / 256, i % 256)], &[64500, i]))
            .collect();
        assert!(feed(&mut o, 1, &short, t0).is_empty());
        let c = &o.counts(t0)[0];
        assert!(c.attr_bytes > 0 && c.attr_bytes < 1 << 18, "{c:?}");
        // 1000-AS paths, each distinct: about 4 KB a route, so the budget
        // ends them after a couple of hundred.
        let long: Vec<ParsedUpdate> = (0..1000u32)
            .map(|i| {
                let path: Vec<u32> = (0..1000).map(|k| 64500 + k + i).collect();
                announce(&[&format!("11.{}.{}.0/24", i / 256, i % 256)], &path)
            })
            .collect();
        let ev = feed(&mut o, 1, &long, t0);
        match &ev[..] {
            [Event::OverLimit {
                exceeded: Exceeded::AttrBytes { bytes, max },
                ..
            }] => assert!(*bytes > *max && *max == 1 << 20),
            other => panic!("{other:?}"),
        }
        let c = &o.counts(t0)[0];
        assert_eq!((c.routes, c.attr_bytes), (0, 0), "the peer's routes are gone");
        assert_eq!(o.pool().len(), 0, "and so are their attributes");
    }

    #[test]
    fn batches_wait_their_window_and_are_paced_by_the_last_compile() {
        let t0 = Instant::now();
        let mut o = owner(None);
        o.peer_up(1, info(64500), [false, false], t0);
        feed(&mut o, 1, &[announce(&["10.0.0.0/8"], &[64500])], ms(t0, 100));
        let mut ev = Vec::new();
        assert!(!o.tick(ms(t0, 1099), &mut ev).publish);
        assert!(o.tick(ms(t0, 1100), &mut ev).publish);
        o.publish().unwrap();
        // That publication took 3 s (a slow compile): the next change waits
        // for its window and then for as long again after it ended.
        o.published(ms(t0, 1100), ms(t0, 4100));
        feed(&mut o, 1, &[announce(&["11.0.0.0/8"], &[64500])], ms(t0, 4200));
        assert!(!o.tick(ms(t0, 5200), &mut ev).publish, "batch window over, pacing not");
        o.counts(ms(t0, 5200));
        assert_eq!(o.next_wake(ms(t0, 5200)), Some(Duration::from_millis(1900)));
        assert!(o.tick(ms(t0, 7100), &mut ev).publish);
        // Nothing pending, nothing due.
        o.publish().unwrap();
        o.counts(ms(t0, 7100));
        assert_eq!(o.next_wake(ms(t0, 7100)), None);
        assert!(o.publish().is_none());
    }

    #[test]
    fn a_session_down_withdraws_its_routes() {
        let t0 = Instant::now();
        let mut o = owner(None);
        o.peer_up(1, info(64500), [false, false], t0);
        feed(&mut o, 1, &[announce(&["10.0.0.0/8"], &[64500])], t0);
        o.tick(ms(t0, 1000), &mut Vec::new());
        assert_eq!(published_prefixes(&o.publish().unwrap()), 1);
        assert_eq!(o.peer_down(1, ms(t0, 2000)), Some("a"));
        assert!(o.tick(ms(t0, 3000), &mut Vec::new()).publish);
        assert_eq!(published_prefixes(&o.publish().unwrap()), 0);
        assert_eq!(o.remove_peer(1, ms(t0, 3000)).as_deref(), Some("a"));
        assert_eq!(o.remove_peer(1, ms(t0, 3000)), None);
    }

    #[test]
    fn views_of_pops_that_are_gone_are_not_published() {
        let t0 = Instant::now();
        let mut o = owner(None);
        o.peer_up(1, info(64500), [false, false], t0);
        feed(&mut o, 1, &[announce(&["10.0.0.0/8"], &[64500])], t0);
        o.set_pops(vec!["iad".into(), "ams".into()], t0);
        o.tick(ms(t0, 1000), &mut Vec::new());
        let p = o.publish().unwrap();
        assert_eq!(p.data.views.len(), 1);
        assert_eq!(p.data.views[0].pop, PopIdx(1), "republished under the new index");
        o.set_pops(vec!["iad".into()], t0);
        o.tick(ms(t0, 2000), &mut Vec::new());
        assert!(o.publish().unwrap().data.views.is_empty());
    }

    fn warming_owner(t0: Instant) -> Owner {
        let mut o = Owner::new(vec!["ams".into(), "iad".into()], Timing::default());
        o.warm_up(t0, ms(t0, 30_000), vec!["a".into(), "b".into(), "bmp/192.0.2.1".into()]);
        // Nothing is due before the expected feeds are even added.
        assert_eq!(o.next_wake(t0), Some(Duration::from_secs(30)));
        o.add_peer(1, "a".into(), "ams", info(64500), NO_LIMIT);
        o.add_peer(2, "b".into(), "iad", info(64501), NO_LIMIT);
        // Not expected (announcements only): never waited for.
        o.add_peer(9, "edge".into(), "iad", info(64509), NO_LIMIT);
        o
    }

    #[test]
    fn nothing_is_published_until_every_feed_is_in_then_at_once() {
        let t0 = Instant::now();
        let mut o = warming_owner(t0);
        o.peer_up(1, info(64500), [true, false], t0);
        feed(&mut o, 1, &[announce(&["10.0.0.0/8"], &[64500])], ms(t0, 10));
        let ev = feed(&mut o, 1, &[eor(Afi::Ipv4)], ms(t0, 20));
        assert!(matches!(&ev[..], [Event::SyncEnded { .. }, Event::Warming { waiting }]
            if waiting == &["b".to_string(), "bmp/192.0.2.1".to_string()]));
        // Peer a's table is in, but b's view is not: nothing is due, long
        // after a batch would have been.
        let mut ev = Vec::new();
        assert!(!o.tick(ms(t0, 5_000), &mut ev).publish);
        assert!(o.warming());
        // A BMP peer of the router counts for it.
        o.add_peer(3, "bmp/192.0.2.1/198.51.100.1".into(), "iad", info(64502), NO_LIMIT);
        o.peer_up(3, info(64502), [false, false], ms(t0, 5_000));
        o.peer_up(2, info(64501), [true, false], ms(t0, 6_000));
        feed(&mut o, 2, &[announce(&["10.0.0.0/8"], &[64501, 64999])], ms(t0, 6_010));
        let ev = feed(&mut o, 2, &[eor(Afi::Ipv4)], ms(t0, 6_020));
        assert!(
            matches!(&ev[..], [Event::SyncEnded { .. }, Event::Warm { took, end: WarmEnd::Complete }]
                if *took == Duration::from_millis(6_020)),
            "{ev:?}"
        );
        assert!(!o.warming());
        assert!(o.tick(ms(t0, 6_020), &mut Vec::new()).publish, "due at once");
        let p = o.publish().unwrap();
        assert_eq!(p.data.views.len(), 2);
        assert_eq!(published_prefixes(&p), 2);
    }

    #[test]
    fn the_warm_up_ends_at_its_bound_and_names_what_was_missing() {
        let t0 = Instant::now();
        let mut o = warming_owner(t0);
        o.peer_up(1, info(64500), [true, false], t0);
        feed(
            &mut o,
            1,
            &[announce(&["10.0.0.0/8"], &[64500]), eor(Afi::Ipv4)],
            ms(t0, 10),
        );
        // Peer b never comes up: the next wake is the bound.
        o.counts(ms(t0, 20));
        assert_eq!(o.next_wake(ms(t0, 20)), Some(Duration::from_millis(29_980)));
        let mut ev = Vec::new();
        assert!(!o.tick(ms(t0, 29_999), &mut ev).publish);
        assert!(ev.is_empty());
        assert!(o.tick(ms(t0, 30_000), &mut ev).publish);
        assert_eq!(
            ev,
            [Event::Warm {
                took: Duration::from_secs(30),
                end: WarmEnd::TimedOut {
                    missing: vec!["b".into(), "bmp/192.0.2.1".into()]
                }
            }]
        );
        assert_eq!(published_prefixes(&o.publish().unwrap()), 1);
    }

    #[test]
    fn a_warm_up_with_nothing_to_wait_for_ends_at_the_first_tick() {
        let t0 = Instant::now();
        let mut o = Owner::new(vec!["ams".into()], Timing::default());
        o.warm_up(t0, ms(t0, 30_000), vec!["a".into()]);
        o.add_peer(1, "a".into(), "ams", info(64500), NO_LIMIT);
        // Removed from the config before it came up; nothing is left.
        o.remove_peer(1, t0);
        assert_eq!(o.next_wake(t0), Some(Duration::ZERO));
        let mut ev = Vec::new();
        assert!(o.tick(t0, &mut ev).publish);
        assert!(matches!(
            &ev[..],
            [Event::Warm {
                end: WarmEnd::Complete,
                ..
            }]
        ));
        assert!(
            o.publish().is_some(),
            "published even with no route: the warm-up is over"
        );
    }
}
