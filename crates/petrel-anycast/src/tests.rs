use super::*;
use petrel_types::Asn;

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn at(t0: Instant, secs: f64) -> Instant {
    t0 + Duration::from_secs_f64(secs)
}

fn conf(on_down: OnDown) -> Config {
    Config {
        services: vec![Service {
            name: "web".into(),
            pop: PopIdx(0),
            prefixes: vec![p("192.0.2.0/24"), p("2001:db8:1::/48")],
            neighbours: vec![
                NeighbourPolicy {
                    neighbour: "edge".into(),
                    prefixes: vec![],
                    attrs: Attrs {
                        communities: vec![174 << 16 | 10],
                        ..Default::default()
                    },
                    on_down,
                },
                NeighbourPolicy {
                    neighbour: "transit".into(),
                    prefixes: vec![p("192.0.2.0/24")],
                    attrs: Attrs {
                        prepend: 1,
                        ..Default::default()
                    },
                    on_down: OnDown::Withdraw,
                },
            ],
            drain_grace: Duration::from_secs(60),
            after_drain: AfterDrain::Withdraw,
        }],
        safety: Safety {
            owned: vec![p("192.0.2.0/23"), p("2001:db8::/32")],
            max_len_v4: 24,
            max_len_v6: 48,
            origin: Asn(64500),
            vrps: None,
        },
        damping: DampingParams::default(),
        hold_down: Duration::from_secs(5),
    }
}

const UP: [PopState; 1] = [PopState::Up];
const DOWN: [PopState; 1] = [PopState::Down];
const DRAINED: [PopState; 1] = [PopState::Drained];

fn announced(c: &[Change]) -> Vec<Prefix> {
    c.iter()
        .filter_map(|c| match c {
            Change::Announce(p, _) => Some(*p),
            Change::Withdraw(_) => None,
        })
        .collect()
}

fn withdrawn(c: &[Change]) -> Vec<Prefix> {
    c.iter()
        .filter_map(|c| match c {
            Change::Withdraw(p) => Some(*p),
            Change::Announce(..) => None,
        })
        .collect()
}

#[test]
fn prefixes_follow_the_pop_per_neighbour_policy() {
    let t0 = Instant::now();
    let mut a = Announcer::new(conf(OnDown::Withdraw));
    // Nothing before the first states, and nothing to a session that is down.
    assert!(a.session_up("edge", t0).is_empty());
    a.observe(&UP, t0);
    assert!(a.changes_for("nobody", t0).is_empty());
    let c = a.changes_for("edge", t0);
    assert_eq!(announced(&c), [p("192.0.2.0/24"), p("2001:db8:1::/48")]);
    match &c[0] {
        Change::Announce(_, attrs) => assert_eq!(attrs.communities, [174 << 16 | 10]),
        other => panic!("{other:?}"),
    }
    // Selective: the transit neighbour gets only the IPv4 prefix, prepended.
    let c = a.session_up("transit", t0);
    assert_eq!(
        c,
        [Change::Announce(
            p("192.0.2.0/24"),
            Attrs {
                prepend: 1,
                ..Default::default()
            }
        )]
    );
    assert!(a.changes_for("edge", t0).is_empty(), "nothing new");
    // The POP goes down (after the hold-down since start): withdrawn.
    a.observe(&DOWN, at(t0, 10.0));
    assert_eq!(withdrawn(&a.changes_for("edge", at(t0, 10.0))).len(), 2);
    assert_eq!(withdrawn(&a.changes_for("transit", at(t0, 10.0))), [p("192.0.2.0/24")]);
}

#[test]
fn on_down_can_keep_the_prefixes_announced_but_depreferred() {
    let t0 = Instant::now();
    let depref = Attrs {
        prepend: 3,
        med: Some(500),
        ..Default::default()
    };
    let mut a = Announcer::new(conf(OnDown::Depref(depref.clone())));
    a.observe(&UP, t0);
    a.session_up("edge", t0);
    a.observe(&DOWN, at(t0, 10.0));
    let c = a.changes_for("edge", at(t0, 10.0));
    assert_eq!(
        c,
        [
            Change::Announce(p("192.0.2.0/24"), depref.clone()),
            Change::Announce(p("2001:db8:1::/48"), depref)
        ]
    );
    let rows = a.status(at(t0, 10.0));
    assert!(rows
        .iter()
        .filter(|r| r.neighbour == "edge")
        .all(|r| r.standing == Standing::Depreferred));
}

#[test]
fn a_drain_sends_graceful_shutdown_then_withdraws_after_the_grace_period() {
    let t0 = Instant::now();
    let mut a = Announcer::new(conf(OnDown::Withdraw));
    a.observe(&UP, t0);
    a.session_up("edge", t0);
    let t1 = at(t0, 100.0);
    a.observe(&DRAINED, t1);
    let c = a.changes_for("edge", t1);
    assert_eq!(c.len(), 2);
    for ch in &c {
        let Change::Announce(_, attrs) = ch else {
            panic!("{ch:?}")
        };
        assert!(attrs.communities.contains(&GRACEFUL_SHUTDOWN), "{attrs:?}");
        assert!(
            attrs.communities.contains(&(174 << 16 | 10)),
            "its own communities stay"
        );
    }
    assert_eq!(a.next_wake(&DRAINED, t1), Some(at(t0, 160.0)));
    // Before the grace period ends, nothing more.
    a.observe(&DRAINED, at(t0, 159.0));
    assert!(a.changes_for("edge", at(t0, 159.0)).is_empty());
    let t2 = at(t0, 160.0);
    a.observe(&DRAINED, t2);
    assert_eq!(withdrawn(&a.changes_for("edge", t2)).len(), 2);
    assert_eq!(a.status(t2)[0].standing, Standing::Drained);
    // Undrain: back at once, without GRACEFUL_SHUTDOWN, and not a flap.
    let t3 = at(t0, 161.0);
    a.observe(&UP, t3);
    let c = a.changes_for("edge", t3);
    assert_eq!(announced(&c).len(), 2);
    let Change::Announce(_, attrs) = &c[0] else { panic!() };
    assert!(!attrs.communities.contains(&GRACEFUL_SHUTDOWN));
    assert_eq!(a.status(t3)[0].penalty, 0.0);
}

#[test]
fn a_drain_found_at_start_is_already_over() {
    // The POP was drained before a restart (the state file keeps drains):
    // the neighbours have nothing from us, and get nothing.
    let t0 = Instant::now();
    let mut a = Announcer::new(conf(OnDown::Withdraw));
    a.observe(&DRAINED, t0);
    assert!(a.session_up("edge", t0).is_empty());
    assert_eq!(a.status(t0)[0].standing, Standing::Drained);
    assert_eq!(a.next_wake(&DRAINED, t0), None);
    // Undrained: announced at once.
    let t1 = at(t0, 5.0);
    a.observe(&UP, t1);
    assert_eq!(announced(&a.changes_for("edge", t1)).len(), 2);
    // A later drain has its grace period as usual.
    let t2 = at(t0, 10.0);
    a.observe(&DRAINED, t2);
    assert!(matches!(a.status(t2)[0].standing, Standing::Draining { .. }));
}

#[test]
fn a_drain_may_end_prepended_instead() {
    let t0 = Instant::now();
    let mut c = conf(OnDown::Withdraw);
    c.services[0].after_drain = AfterDrain::Prepend(4);
    let mut a = Announcer::new(c);
    a.observe(&UP, t0);
    a.session_up("edge", t0);
    a.observe(&DRAINED, t0);
    a.changes_for("edge", t0);
    let t1 = at(t0, 60.0);
    a.observe(&DRAINED, t1);
    let c = a.changes_for("edge", t1);
    let Change::Announce(_, attrs) = &c[0] else {
        panic!("{c:?}")
    };
    assert_eq!(attrs.prepend, 4);
    assert!(attrs.communities.contains(&GRACEFUL_SHUTDOWN));
}

#[test]
fn health_changes_wait_out_the_hold_down() {
    let t0 = Instant::now();
    let mut a = Announcer::new(conf(OnDown::Withdraw));
    a.observe(&UP, at(t0, 10.0));
    a.session_up("edge", at(t0, 10.0));
    // Down two seconds after coming up: deferred until 15 s.
    a.observe(&DOWN, at(t0, 12.0));
    assert!(a.changes_for("edge", at(t0, 12.0)).is_empty());
    assert_eq!(a.next_wake(&DOWN, at(t0, 12.0)), Some(at(t0, 15.0)));
    a.observe(&DOWN, at(t0, 15.0));
    assert_eq!(withdrawn(&a.changes_for("edge", at(t0, 15.0))).len(), 2);
    // Up again within the hold-down and down before it ends: no change at all.
    a.observe(&UP, at(t0, 16.0));
    a.observe(&DOWN, at(t0, 19.0));
    a.observe(&DOWN, at(t0, 20.0));
    assert!(a.changes_for("edge", at(t0, 20.0)).is_empty());
}

/// A service flapping every second for a minute: with a 5 s hold-down and
/// RFC 2439 damping, the neighbour sees a bounded, predictable number of
/// UPDATEs, then none until the penalty decays below reuse.
#[test]
fn a_flapping_service_is_damped_to_a_predicted_number_of_updates() {
    let t0 = Instant::now();
    let mut a = Announcer::new(conf(OnDown::Withdraw));
    a.session_up("edge", t0);
    let mut updates = 0;
    for s in 0..60 {
        let now = at(t0, s as f64);
        a.observe(if s % 2 == 0 { &UP } else { &DOWN }, now);
        updates += a.changes_for("edge", now).len();
    }
    // Announce at 0; withdraw at 5; announce at 10; withdraw at 15;
    // announce at 20; withdraw at 25 (third flap: 2,930 > 2,000, suppressed).
    // Two prefixes each.
    assert_eq!(updates, 6 * 2);
    let rows = a.status(at(t0, 60.0));
    let Standing::Suppressed { until } = rows[0].standing else {
        panic!("{:?}", rows[0])
    };
    // Stable from now on: released exactly when the penalty reaches 750.
    let pen = rows[0].penalty;
    let want = at(t0, 60.0) + Duration::from_secs_f64(900.0 * (pen / 750.0).log2());
    assert!(
        until.duration_since(want) < Duration::from_millis(5),
        "{until:?} {want:?}"
    );
    assert_eq!(a.next_wake(&UP, at(t0, 60.0)), Some(until));
    a.observe(&UP, until - Duration::from_secs(1));
    assert!(a.changes_for("edge", until - Duration::from_secs(1)).is_empty());
    a.observe(&UP, until);
    assert_eq!(announced(&a.changes_for("edge", until)).len(), 2);
}

#[test]
fn prefixes_that_fail_the_safety_checks_are_never_sent() {
    let t0 = Instant::now();
    let mut c = conf(OnDown::Withdraw);
    c.services[0].prefixes = vec![
        p("192.0.2.0/24"),
        p("198.51.100.0/24"),
        p("192.0.3.0/25"),
        p("192.0.3.0/24"),
    ];
    c.safety.vrps = Some(vec![safety::Vrp {
        prefix: p("192.0.3.0/24"),
        max_len: 24,
        asn: Asn(64999),
    }]);
    let mut a = Announcer::new(c);
    a.observe(&UP, t0);
    assert_eq!(announced(&a.session_up("edge", t0)), [p("192.0.2.0/24")]);
    let refused: Vec<_> = a
        .status(t0)
        .into_iter()
        .filter(|r| r.neighbour == "edge")
        .filter_map(|r| match r.standing {
            Standing::Refused(why) => Some((r.prefix, why)),
            _ => None,
        })
        .collect();
    assert_eq!(
        refused,
        [
            (p("198.51.100.0/24"), Refusal::NotOwned),
            (p("192.0.3.0/25"), Refusal::TooLong { max: 24 }),
            (p("192.0.3.0/24"), Refusal::RpkiInvalid)
        ]
    );
}

#[test]
fn a_session_reset_re_announces_exactly_the_current_set() {
    let t0 = Instant::now();
    let mut a = Announcer::new(conf(OnDown::Withdraw));
    a.observe(&UP, t0);
    let first = a.session_up("edge", t0);
    a.session_down("edge");
    assert!(
        a.changes_for("edge", t0).is_empty(),
        "nothing goes to a session that is down"
    );
    assert_eq!(a.session_up("edge", at(t0, 1.0)), first);
}

#[test]
fn a_reload_that_changes_a_community_sends_one_update_per_prefix_and_keeps_state() {
    let t0 = Instant::now();
    let mut a = Announcer::new(conf(OnDown::Withdraw));
    a.observe(&UP, t0);
    a.session_up("edge", t0);
    a.session_up("transit", t0);
    let mut c = conf(OnDown::Withdraw);
    c.services[0].neighbours[0].attrs.communities = vec![174 << 16 | 20];
    a.reconfigure(c);
    let ch = a.changes_for("edge", at(t0, 1.0));
    assert_eq!(announced(&ch).len(), 2);
    assert!(withdrawn(&ch).is_empty());
    assert!(
        a.changes_for("transit", at(t0, 1.0)).is_empty(),
        "its policy did not change"
    );
    assert_eq!(a.neighbours_up(), ["edge", "transit"]);
}
