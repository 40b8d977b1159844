//! Two state machines wired back to back in memory; time passes by hand.

use petrel_bgp_fsm::{collision_keeps_new, notif, Action, Config, Session, State};
use petrel_bgp_wire::{encode, encode_update, AsPathSegment, Attributes, Message, Nlri, Origin, UpdateOut};
use std::net::Ipv4Addr;

/// Moves bytes between two sessions; records what else they asked for.
struct Wire {
    a: Session,
    b: Session,
    a_events: Vec<Action>,
    b_events: Vec<Action>,
    /// Drop everything A sends (a dead peer).
    mute_a: bool,
}

impl Wire {
    fn new(a: Config, b: Config) -> Wire {
        Wire {
            a: Session::new(a),
            b: Session::new(b),
            a_events: vec![],
            b_events: vec![],
            mute_a: false,
        }
    }

    /// B listens, A connects, and both run until they settle.
    fn started(a: Config, b: Config) -> Wire {
        let mut w = Wire::new(a, b);
        w.b.start(0);
        w.a.start(0);
        w.pump(0);
        w
    }

    /// Run until neither side has anything to do at `now`.
    fn pump(&mut self, now: u64) {
        loop {
            let mut moved = false;
            while let Some(act) = self.a.poll_action() {
                moved = true;
                match act {
                    Action::Connect => {
                        self.a.tcp_connected(now);
                        self.b.tcp_connected(now);
                    }
                    Action::Send(bytes) if !self.mute_a => self.b.receive(&bytes, now),
                    Action::Send(_) => {}
                    other => self.a_events.push(other),
                }
            }
            while let Some(act) = self.b.poll_action() {
                moved = true;
                match act {
                    Action::Send(bytes) => self.a.receive(&bytes, now),
                    other => self.b_events.push(other),
                }
            }
            if !moved {
                break;
            }
        }
    }

    fn tick(&mut self, now: u64) {
        self.a.tick(now);
        self.b.tick(now);
        self.pump(now);
    }
}

fn pair() -> Wire {
    let a = Config {
        local_as: 4_200_000_001,
        peer_as: 64513,
        bgp_id: 1,
        hold_time: 90,
        ..Default::default()
    };
    let b = Config {
        local_as: 64513,
        peer_as: 4_200_000_001,
        bgp_id: 2,
        hold_time: 30,
        passive: true,
        ..Default::default()
    };
    Wire::started(a, b)
}

#[test]
fn sessions_establish_and_negotiate() {
    let w = pair();
    assert_eq!((w.a.state(), w.b.state()), (State::Established, State::Established));
    let n = w.a.negotiated().unwrap();
    assert_eq!(n.peer_as, 64513);
    assert_eq!(n.hold_time, 30, "the smaller hold time wins");
    assert!(
        n.ctx.four_octet_as && !n.ctx.add_path_v4,
        "ADD-PATH needs the peer to send"
    );
    assert!(matches!(w.a_events[0], Action::Established(_)));
    assert!(matches!(w.b_events[0], Action::Established(_)));
}

#[test]
fn keepalives_keep_the_session_and_hold_timer_expiry_ends_it() {
    let mut w = pair();
    // 10 minutes of keepalives every hold/3 = 10 s.
    for s in 1..=60 {
        w.tick(s * 10_000);
    }
    assert_eq!((w.a.state(), w.b.state()), (State::Established, State::Established));
    // A goes silent: B's hold timer (30 s) expires.
    w.mute_a = true;
    let t0 = 600_000;
    let deadline = w.b.next_deadline().unwrap();
    assert!(deadline <= t0 + 30_000);
    w.tick(t0 + 29_000);
    assert_eq!(w.b.state(), State::Established);
    w.tick(t0 + 30_001);
    assert_eq!(w.b.state(), State::Idle);
    assert!(w
        .b_events
        .iter()
        .any(|e| matches!(e, Action::Down(why) if why == "hold timer expired")));
}

#[test]
fn updates_flow_and_a_malformed_attribute_keeps_the_session() {
    let mut w = pair();
    let attrs = Attributes {
        origin: Some(Origin::Igp),
        as_path: vec![AsPathSegment::Sequence(vec![4_200_000_001, 3356])],
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
        ..Default::default()
    };
    let nlri = [Nlri {
        path_id: None,
        prefix: "198.51.100.0/24".parse().unwrap(),
    }];
    let ctx = w.a.negotiated().unwrap().ctx;
    let mut good = Vec::new();
    encode_update(
        &UpdateOut {
            withdrawn: &[],
            announced: &nlri,
            attrs: &attrs,
        },
        &ctx,
        &mut good,
    );
    assert!(w.a.send_update(good));
    w.pump(1);
    let Some(Action::Updates(b)) = w.b_events.last() else {
        panic!("{:?}", w.b_events)
    };
    assert_eq!(b.len(), 1);
    let u = &b.as_slice()[0];
    assert_eq!(u.announced, nlri);
    assert_eq!(u.attrs.origin_as(), Some(3356));
    // A COMMUNITIES attribute of 3 octets: treat-as-withdraw (RFC 7606).
    let mut again = Vec::new();
    encode_update(
        &UpdateOut {
            withdrawn: &[],
            announced: &nlri,
            attrs: &attrs,
        },
        &ctx,
        &mut again,
    );
    let m = petrel_bgp_wire::decode(&again, &ctx).unwrap().unwrap().0;
    let Message::Update(u) = m else { panic!() };
    let mut bad_attrs = u.attributes.to_vec();
    bad_attrs.extend_from_slice(&[0xc0, 8, 3, 1, 2, 3]);
    let mut bad = Vec::new();
    encode(
        &Message::Update(petrel_bgp_wire::Update {
            withdrawn: &[],
            attributes: &bad_attrs,
            nlri: u.nlri,
        }),
        &mut bad,
    );
    w.a.send_update(bad);
    w.pump(2);
    let Some(Action::Updates(b)) = w.b_events.last() else {
        panic!()
    };
    let u = &b.as_slice()[0];
    assert!(u.announced.is_empty() && u.withdrawn == nlri && u.treat_as_withdraw.is_some());
    assert_eq!(
        w.b.state(),
        State::Established,
        "treat-as-withdraw keeps the session up"
    );
}

#[test]
fn a_wrong_peer_as_is_refused_with_bad_peer_as() {
    let a = Config {
        local_as: 65001,
        peer_as: 65002,
        bgp_id: 1,
        ..Default::default()
    };
    let b = Config {
        local_as: 65002,
        peer_as: 65099,
        bgp_id: 2,
        passive: true,
        ..Default::default()
    };
    let w = Wire::started(a, b);
    assert_eq!(w.b.state(), State::Idle);
    assert!(w.a_events.iter().any(|e| matches!(e, Action::Down(why) if why == &format!("NOTIFICATION {}/{} from the peer", notif::OPEN_MESSAGE, notif::BAD_PEER_AS))), "{:?}", w.a_events);
}

#[test]
fn connect_retry_backs_off_and_stop_sends_cease() {
    let mut s = Session::new(Config {
        connect_retry_ms: 1000,
        ..Default::default()
    });
    s.start(0);
    assert_eq!(s.poll_action(), Some(Action::Connect));
    s.tcp_closed(10);
    assert_eq!(s.state(), State::Idle);
    assert_eq!(s.next_deadline(), Some(10 + 2000), "doubled after a failure");
    s.tick(2010);
    assert_eq!(s.state(), State::Connect);
    // Established pair stopped by configuration change: Cease/6 reaches the peer.
    let mut w = pair();
    w.a.stop(notif::OTHER_CONFIGURATION_CHANGE, &[]);
    w.pump(5);
    assert_eq!(w.a.state(), State::Idle);
    assert!(
        w.b_events
            .iter()
            .any(|e| matches!(e, Action::Down(why) if why == "NOTIFICATION 6/6 from the peer")),
        "{:?}",
        w.b_events
    );
}

#[test]
fn garbage_from_the_peer_gets_a_notification_not_a_panic() {
    let mut w = pair();
    w.b.receive(&[0u8; 40], 3);
    assert_eq!(w.b.state(), State::Idle);
    let sent: Vec<Action> = std::iter::from_fn(|| w.b.poll_action()).collect();
    assert!(
        matches!(&sent[0], Action::Send(b) if b[18] == 3 && b[19] == notif::MESSAGE_HEADER),
        "{sent:?}"
    );
}

#[test]
fn an_accepted_connection_replaces_an_outgoing_attempt() {
    // An active session, Idle or connecting, takes an incoming connection
    // and asks for no outgoing one.
    for started in [false, true] {
        let mut s = Session::new(Config {
            local_as: 64512,
            peer_as: 64513,
            bgp_id: 1,
            ..Default::default()
        });
        if started {
            s.start(0);
        }
        assert!(s.tcp_accepted(5));
        assert_eq!(s.state(), State::OpenSent);
        let mut acts = vec![];
        while let Some(a) = s.poll_action() {
            acts.push(a);
        }
        assert!(!acts.iter().any(|a| matches!(a, Action::Connect)), "{acts:?}");
        assert!(matches!(acts.last(), Some(Action::Send(_))), "our OPEN");
        // With a connection in hand, a second one is the caller's collision.
        assert!(!s.tcp_accepted(6));
    }
}

#[test]
fn collisions_keep_the_connection_of_the_higher_identifier() {
    // Ours (outgoing) against the peer's (incoming).
    assert!(collision_keeps_new(0x0a00_0001, 0x0a00_0002, true));
    assert!(!collision_keeps_new(0x0a00_0002, 0x0a00_0001, true));
    // Compared as unsigned integers, not as signed ones.
    assert!(collision_keeps_new(0x7fff_ffff, 0x8000_0000, true));
    // Two connections from the peer: the first stays.
    assert!(!collision_keeps_new(1, 2, false));
}

/// An UPDATE announcing `prefix` with the path `path`, as A sends it.
fn update_bytes(w: &Wire, path: &[u32], prefix: &str) -> Vec<u8> {
    let attrs = Attributes {
        origin: Some(Origin::Igp),
        as_path: vec![AsPathSegment::Sequence(path.to_vec())],
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
        ..Default::default()
    };
    let nlri = [Nlri {
        path_id: None,
        prefix: prefix.parse().unwrap(),
    }];
    let mut out = Vec::new();
    encode_update(
        &UpdateOut {
            withdrawn: &[],
            announced: &nlri,
            attrs: &attrs,
        },
        &w.a.negotiated().unwrap().ctx,
        &mut out,
    );
    out
}

#[test]
fn updates_of_a_read_come_as_one_batch_before_what_follows() {
    let mut w = pair();
    w.b_events.clear();
    let mut read = Vec::new();
    for (i, p) in ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"].iter().enumerate() {
        read.extend(update_bytes(&w, &[4_200_000_001, 100 + i as u32], p));
    }
    encode(
        &Message::Notification(petrel_bgp_wire::Notification {
            code: notif::CEASE,
            subcode: notif::ADMINISTRATIVE_SHUTDOWN,
            data: &[],
        }),
        &mut read,
    );
    w.b.receive(&read, 1);
    let actions: Vec<Action> = std::iter::from_fn(|| w.b.poll_action()).collect();
    let Some(Action::Updates(b)) = actions.first() else {
        panic!("{actions:?}")
    };
    let origins: Vec<Option<u32>> = b.as_slice().iter().map(|u| u.attrs.origin_as()).collect();
    assert_eq!(origins, [Some(100), Some(101), Some(102)], "in order, in one batch");
    assert!(
        matches!(actions.last(), Some(Action::Down(_))),
        "the NOTIFICATION's Down comes after the routes before it: {actions:?}"
    );
    assert_eq!(actions.iter().filter(|a| matches!(a, Action::Updates(_))).count(), 1);
}

#[test]
fn a_recycled_batch_takes_the_next_updates() {
    let mut w = pair();
    w.b_events.clear();
    let first: Vec<u8> = ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"]
        .iter()
        .flat_map(|p| update_bytes(&w, &[4_200_000_001, 7, 8, 9], p))
        .collect();
    w.b.receive(&first, 1);
    let Some(Action::Updates(b)) = w.b.poll_action() else {
        panic!()
    };
    assert_eq!(b.len(), 3);
    w.b.recycle(b);
    let second = update_bytes(&w, &[4_200_000_001], "192.0.2.128/25");
    w.b.receive(&second, 2);
    let Some(Action::Updates(b)) = w.b.poll_action() else {
        panic!()
    };
    assert_eq!(b.len(), 1, "nothing of the recycled batch's updates is left");
    let u = &b.as_slice()[0];
    assert_eq!(u.attrs.as_path, vec![AsPathSegment::Sequence(vec![4_200_000_001])]);
    assert_eq!(u.announced[0].prefix, "192.0.2.128/25".parse().unwrap());
    assert!(w.b.poll_action().is_none());
}
