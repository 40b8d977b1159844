//! The BGP-4 session state machine (RFC 4271 §8), without IO or a clock.
//!
//! The shell feeds it events (start/stop, TCP connected or closed, bytes
//! received) and the current time in milliseconds, and drains [`Action`]s:
//! open a connection, send bytes, close, deliver parsed UPDATEs, report the
//! session up or down. [`Session::next_deadline`] says when to call
//! [`Session::tick`] again; tests drive a 90 s hold timer in microseconds.
//!
//! One TCP connection per session: the shell either connects (active) or
//! hands over an accepted connection (passive). Connection collision
//! detection (§6.8) is left to the shell, which keeps one connection per peer.

#![forbid(unsafe_code)]

use petrel_bgp_wire::{
    decode, encode, Afi, Capability, DecodeError, Message, Notification, Open, SessionCtx, UpdateBatch,
};
use std::collections::VecDeque;

pub use petrel_bgp_wire::notif;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub local_as: u32,
    /// The peer's AS; its OPEN must match (Bad Peer AS otherwise).
    pub peer_as: u32,
    pub bgp_id: u32,
    /// Proposed hold time in seconds (0: no keepalives, or >= 3).
    pub hold_time: u16,
    /// Wait for the peer to connect instead of connecting.
    pub passive: bool,
    /// First connect-retry delay; doubles per failure up to 16x.
    pub connect_retry_ms: u64,
    pub ipv4: bool,
    pub ipv6: bool,
    /// Offer to receive ADD-PATH (RFC 7911).
    pub add_path_receive: bool,
    /// Offer IPv4 unicast with IPv6 next hops (RFC 8950).
    pub extended_next_hop: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            local_as: 64512,
            peer_as: 64513,
            bgp_id: 0x7f00_0001,
            hold_time: 90,
            passive: false,
            connect_retry_ms: 5_000,
            ipv4: true,
            ipv6: true,
            add_path_receive: true,
            extended_next_hop: false,
        }
    }
}

/// What was agreed in the OPEN exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    pub peer_as: u32,
    pub peer_id: u32,
    pub hold_time: u16,
    pub ctx: SessionCtx,
    pub route_refresh: bool,
    /// IPv4 and IPv6 unicast, as both sides offered them (RFC 4760; a
    /// peer without Multiprotocol capabilities speaks IPv4 only).
    pub families: [bool; 2],
    /// Both sides offered IPv4 unicast with IPv6 next hops (RFC 8950).
    pub extended_next_hop: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to the peer.
    Connect,
    Send(Vec<u8>),
    /// Close the TCP connection (after sending what is queued).
    Close,
    Established(Negotiated),
    /// Routes from the peer: the UPDATEs since the last action, in order.
    /// Hand the batch back with [`Session::recycle`] once applied: the
    /// next UPDATEs are parsed into its storage.
    Updates(UpdateBatch),
    /// The session went down; the RIB drops the peer's routes.
    Down(String),
}

pub struct Session {
    cfg: Config,
    state: State,
    out: VecDeque<Action>,
    /// UPDATEs parsed since the last action was queued.
    inbox: UpdateBatch,
    /// Batches handed back, to parse into.
    spare: Vec<UpdateBatch>,
    buf: Vec<u8>,
    negotiated: Option<Negotiated>,
    connect_retry_at: Option<u64>,
    hold_at: Option<u64>,
    keepalive_at: Option<u64>,
    failures: u32,
    ctx: SessionCtx,
}

impl Session {
    pub fn new(cfg: Config) -> Session {
        Session {
            cfg,
            state: State::Idle,
            out: VecDeque::new(),
            inbox: UpdateBatch::default(),
            spare: Vec::new(),
            buf: Vec::new(),
            negotiated: None,
            connect_retry_at: None,
            hold_at: None,
            keepalive_at: None,
            failures: 0,
            ctx: SessionCtx::default(),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.out.pop_front()
    }

    /// A batch from [`Action::Updates`], applied: its storage takes the
    /// next UPDATEs.
    pub fn recycle(&mut self, mut b: UpdateBatch) {
        // Two: one filling while one is applied.
        if self.spare.len() < 2 {
            b.recycle();
            self.spare.push(b);
        }
    }

    /// Queue an action after the UPDATEs parsed before it.
    fn push(&mut self, a: Action) {
        self.flush_updates();
        self.out.push_back(a);
    }

    fn flush_updates(&mut self) {
        if !self.inbox.is_empty() {
            let next = self.spare.pop().unwrap_or_default();
            let batch = std::mem::replace(&mut self.inbox, next);
            self.out.push_back(Action::Updates(batch));
        }
    }

    /// The earliest time `tick` has work to do.
    pub fn next_deadline(&self) -> Option<u64> {
        [self.connect_retry_at, self.hold_at, self.keepalive_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// ManualStart (events 1/4/5).
    pub fn start(&mut self, now: u64) {
        if self.state != State::Idle {
            return;
        }
        if self.cfg.passive {
            self.state = State::Active;
        } else {
            self.state = State::Connect;
            self.push(Action::Connect);
            self.connect_retry_at = Some(now + self.retry_delay());
        }
    }

    /// ManualStop: Cease with a subcode (e.g. administrative shutdown,
    /// other configuration change, maximum prefixes reached).
    pub fn stop(&mut self, subcode: u8, data: &[u8]) {
        if matches!(self.state, State::OpenSent | State::OpenConfirm | State::Established) {
            self.notify(notif::CEASE, subcode, data);
        }
        self.down(format!("stopped (Cease/{subcode})"), false);
        self.connect_retry_at = None;
    }

    /// The shell's TCP connection is up (outgoing connected or incoming
    /// accepted).
    pub fn tcp_connected(&mut self, now: u64) {
        match self.state {
            State::Connect | State::Active => {
                self.connect_retry_at = None;
                self.buf.clear();
                self.send_open();
                self.state = State::OpenSent;
                // RFC 4271 §8.2.2: a large hold timer while waiting for OPEN.
                self.hold_at = Some(now + 240_000);
            }
            _ => self.push(Action::Close),
        }
    }

    /// An incoming connection from the peer was accepted. In Idle, Connect
    /// or Active the session goes on over it (an outgoing attempt is
    /// dropped, and no new one is asked for). Otherwise `false`: the
    /// session already has a connection, and the caller resolves the
    /// collision (RFC 4271 §6.8, see [`collision_keeps_new`]).
    pub fn tcp_accepted(&mut self, now: u64) -> bool {
        match self.state {
            State::Idle | State::Connect | State::Active => {
                self.out.retain(|a| !matches!(a, Action::Connect));
                self.state = State::Active;
                self.tcp_connected(now);
                true
            }
            _ => false,
        }
    }

    /// The BGP Identifier this session sends.
    pub fn local_id(&self) -> u32 {
        self.cfg.bgp_id
    }

    /// The TCP connection failed or closed.
    pub fn tcp_closed(&mut self, now: u64) {
        if self.state == State::Idle {
            return;
        }
        self.down("connection closed".into(), true);
        self.restart_later(now);
    }

    /// Bytes from the peer; complete messages are processed at once.
    pub fn receive(&mut self, bytes: &[u8], now: u64) {
        // The buffer is taken out so that messages can borrow it while the
        // session changes.
        let mut buf = std::mem::take(&mut self.buf);
        buf.extend_from_slice(bytes);
        let mut at = 0;
        while self.state != State::Idle {
            match decode(&buf[at..], &self.ctx) {
                Ok(None) => break,
                Ok(Some((msg, len))) => {
                    at += len;
                    self.on_message(msg, now);
                }
                Err(e) => {
                    self.fail(e, now);
                    break;
                }
            }
        }
        self.flush_updates();
        if self.state == State::Idle {
            buf.clear();
        } else {
            buf.drain(..at);
        }
        self.buf = buf;
    }

    /// Timers due at `now`.
    pub fn tick(&mut self, now: u64) {
        if self.hold_at.is_some_and(|t| t <= now) {
            self.notify(notif::HOLD_TIMER_EXPIRED, 0, &[]);
            self.down("hold timer expired".into(), true);
            self.restart_later(now);
            return;
        }
        if self.keepalive_at.is_some_and(|t| t <= now) {
            self.send(&Message::Keepalive);
            self.keepalive_at = self.negotiated.as_ref().map(|n| now + keepalive_ms(n.hold_time));
        }
        if self.connect_retry_at.is_some_and(|t| t <= now) {
            match self.state {
                State::Connect => {
                    // The attempt did not complete: try again.
                    self.push(Action::Close);
                    self.push(Action::Connect);
                    self.connect_retry_at = Some(now + self.retry_delay());
                }
                State::Idle | State::Active => {
                    self.connect_retry_at = None;
                    self.start(now);
                }
                _ => self.connect_retry_at = None,
            }
        }
    }

    /// Queue an UPDATE (already encoded) while Established.
    pub fn send_update(&mut self, bytes: Vec<u8>) -> bool {
        if self.state != State::Established {
            return false;
        }
        self.push(Action::Send(bytes));
        true
    }

    fn retry_delay(&self) -> u64 {
        self.cfg.connect_retry_ms << self.failures.min(4)
    }

    fn restart_later(&mut self, now: u64) {
        self.failures += 1;
        self.connect_retry_at = Some(now + self.retry_delay());
    }

    fn send(&mut self, m: &Message<'_>) {
        let mut b = Vec::new();
        encode(m, &mut b);
        self.push(Action::Send(b));
    }

    fn notify(&mut self, code: u8, subcode: u8, data: &[u8]) {
        self.send(&Message::Notification(Notification { code, subcode, data }));
    }

    fn send_open(&mut self) {
        let mut caps = Vec::new();
        if self.cfg.ipv4 {
            caps.push(Capability::Multiprotocol { afi: 1, safi: 1 });
        }
        if self.cfg.ipv6 {
            caps.push(Capability::Multiprotocol { afi: 2, safi: 1 });
        }
        caps.push(Capability::RouteRefresh);
        caps.push(Capability::FourOctetAs(self.cfg.local_as));
        if self.cfg.add_path_receive {
            let mut l = Vec::new();
            if self.cfg.ipv4 {
                l.push((1, 1, 1));
            }
            if self.cfg.ipv6 {
                l.push((2, 1, 1));
            }
            caps.push(Capability::AddPath(l));
        }
        caps.push(Capability::ExtendedMessage);
        if self.cfg.extended_next_hop && self.cfg.ipv4 {
            caps.push(Capability::ExtendedNextHop(vec![(1, 1, 2)]));
        }
        let my_as = if self.cfg.local_as > 65535 {
            23456
        } else {
            self.cfg.local_as as u16
        };
        let open = Open {
            version: 4,
            my_as,
            hold_time: self.cfg.hold_time,
            bgp_id: self.cfg.bgp_id,
            capabilities: caps,
        };
        self.send(&Message::Open(open));
    }

    fn fail(&mut self, e: DecodeError, now: u64) {
        self.notify(e.code, e.subcode, &e.data);
        self.down(e.reason, true);
        self.restart_later(now);
    }

    fn down(&mut self, why: String, report: bool) {
        let was_up = self.state == State::Established;
        if self.state != State::Idle {
            self.push(Action::Close);
        }
        self.state = State::Idle;
        self.hold_at = None;
        self.keepalive_at = None;
        self.negotiated = None;
        self.ctx = SessionCtx::default();
        if was_up || report {
            self.push(Action::Down(why));
        }
    }

    fn on_message(&mut self, msg: Message<'_>, now: u64) {
        let fsm_error = |s: &mut Session, now| {
            s.notify(notif::FSM_ERROR, 0, &[]);
            s.down("unexpected message for the state (FSM error)".into(), true);
            s.restart_later(now);
        };
        match (self.state, msg) {
            (_, Message::Notification(n)) => {
                self.down(format!("NOTIFICATION {}/{} from the peer", n.code, n.subcode), true);
                self.restart_later(now);
            }
            (State::OpenSent, Message::Open(o)) => match self.check_open(&o) {
                Ok(n) => {
                    self.ctx = n.ctx;
                    self.send(&Message::Keepalive);
                    self.hold_at = (n.hold_time > 0).then(|| now + n.hold_time as u64 * 1000);
                    self.keepalive_at = (n.hold_time > 0).then(|| now + keepalive_ms(n.hold_time));
                    self.negotiated = Some(n);
                    self.state = State::OpenConfirm;
                }
                Err((sub, data, why)) => {
                    self.notify(notif::OPEN_MESSAGE, sub, &data);
                    self.down(why, true);
                    self.restart_later(now);
                }
            },
            (State::OpenConfirm, Message::Keepalive) => {
                self.state = State::Established;
                self.failures = 0;
                self.touch(now);
                let n = self.negotiated.clone().expect("negotiated in OpenSent");
                self.push(Action::Established(n));
            }
            (State::Established, Message::Keepalive) => self.touch(now),
            (State::Established, Message::Update(u)) => {
                self.touch(now);
                match self.inbox.parse_push(&u, &self.ctx) {
                    Ok(_) => {}
                    Err(e) => self.fail(e, now),
                }
            }
            (State::Established, Message::RouteRefresh(_)) => self.touch(now),
            _ => fsm_error(self, now),
        }
    }

    fn touch(&mut self, now: u64) {
        if let Some(n) = &self.negotiated {
            if n.hold_time > 0 {
                self.hold_at = Some(now + n.hold_time as u64 * 1000);
            }
        }
    }

    fn check_open(&self, o: &Open) -> Result<Negotiated, (u8, Vec<u8>, String)> {
        if o.version != 4 {
            return Err((
                notif::UNSUPPORTED_VERSION,
                vec![0, 4],
                format!("BGP version {}", o.version),
            ));
        }
        if o.asn() != self.cfg.peer_as {
            return Err((
                notif::BAD_PEER_AS,
                vec![],
                format!("peer AS {} is not the configured {}", o.asn(), self.cfg.peer_as),
            ));
        }
        if o.hold_time == 1 || o.hold_time == 2 {
            return Err((
                notif::UNACCEPTABLE_HOLD_TIME,
                vec![],
                format!("hold time {}", o.hold_time),
            ));
        }
        if o.bgp_id == 0 || o.bgp_id == self.cfg.bgp_id {
            return Err((
                notif::BAD_BGP_IDENTIFIER,
                vec![],
                format!("BGP identifier {:#x}", o.bgp_id),
            ));
        }
        let four = o.has(|c| matches!(c, Capability::FourOctetAs(_)));
        let ctx = SessionCtx {
            four_octet_as: four,
            add_path_v4: self.cfg.add_path_receive && o.add_path_send(Afi::Ipv4),
            add_path_v6: self.cfg.add_path_receive && o.add_path_send(Afi::Ipv6),
            extended_messages: o.has(|c| matches!(c, Capability::ExtendedMessage)),
            ibgp: self.cfg.local_as == self.cfg.peer_as,
        };
        let offered = o.unicast_families();
        Ok(Negotiated {
            peer_as: o.asn(),
            peer_id: o.bgp_id,
            hold_time: o.hold_time.min(self.cfg.hold_time),
            ctx,
            route_refresh: o.has(|c| matches!(c, Capability::RouteRefresh)),
            families: [self.cfg.ipv4 && offered[0], self.cfg.ipv6 && offered[1]],
            extended_next_hop: self.cfg.extended_next_hop && self.cfg.ipv4 && o.ipv4_with_ipv6_next_hops(),
        })
    }
}

/// RFC 4271 §6.8: of two connections between the same speakers, the one
/// initiated by the speaker with the higher BGP Identifier (compared as
/// unsigned integers) stays. The new connection was initiated by the peer;
/// the existing one by us when `existing_outgoing`. Two connections from
/// the peer are no collision: the existing one stays.
pub fn collision_keeps_new(local_id: u32, remote_id: u32, existing_outgoing: bool) -> bool {
    existing_outgoing && remote_id > local_id
}

fn keepalive_ms(hold: u16) -> u64 {
    hold as u64 * 1000 / 3
}
