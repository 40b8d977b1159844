//! The anycast announcer's shell: it follows the decision core's
//! publications (POP states, reloads), keeps `petrel_anycast::Announcer`,
//! and hands each session the UPDATEs it should write. Sessions tell it
//! when they come up (with what they negotiated) and go down.

use super::feed::PeerCtl;
use petrel_anycast::wire::{self, Session, Unsendable};
use petrel_anycast::{Announcer, Attrs, Change, Standing};
use petrel_api::{AnycastAttributes, AnycastRoute, AnycastStatus};
use petrel_config::Config;
use petrel_director::{ChangeKind, Generation, Publisher};
use petrel_types::{Asn, PopState, Prefix};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Instant;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;

pub enum AnnounceMsg {
    /// A session reached Established.
    Up {
        name: String,
        ctl: mpsc::UnboundedSender<PeerCtl>,
        ctx: petrel_bgp_wire::SessionCtx,
        families: [bool; 2],
        extended_next_hop: bool,
        local: IpAddr,
    },
    Down {
        name: String,
        reason: String,
    },
    /// The decision core published a generation.
    Published {
        reload: bool,
    },
}

pub type AnnounceTx = mpsc::UnboundedSender<AnnounceMsg>;

struct Up {
    ctl: mpsc::UnboundedSender<PeerCtl>,
    session: Session,
}

/// What the shell knows that the core does not: sessions, why they went
/// down, and changes the wire could not carry.
#[derive(Default)]
struct Sessions {
    up: HashMap<String, Up>,
    /// Why a neighbour's session went down, until it is up again.
    down_reason: HashMap<String, String>,
    /// (neighbour, prefix) whose last change could not be encoded.
    not_sent: HashMap<(String, Prefix), &'static str>,
}

/// The announcer's config from a generation: none without `[bgp]`.
fn conf_of(g: &Generation) -> Option<petrel_anycast::Config> {
    let c: &Config = g.config();
    let b = c.bgp.as_ref()?;
    let safety = g.built.safety.as_deref().cloned().unwrap_or_else(|| b.safety.clone());
    Some(petrel_anycast::Config {
        services: c.anycast.clone(),
        safety,
        damping: b.damping,
        hold_down: b.hold_down,
    })
}

/// What `petrel anycast`, the API and the metrics show.
#[derive(Debug, Default)]
pub struct AnycastBoard {
    status: Mutex<AnycastStatus>,
}

impl AnycastBoard {
    pub fn snapshot(&self) -> AnycastStatus {
        self.status.lock().expect("anycast board").clone()
    }
}

fn unix_at(t: Instant, now: Instant) -> u64 {
    let unix_now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let back = now.saturating_duration_since(t);
    let ahead = t.saturating_duration_since(now);
    (unix_now + ahead).saturating_sub(back).as_secs()
}

fn api_attrs(a: &Attrs) -> AnycastAttributes {
    AnycastAttributes {
        prepend: a.prepend,
        med: a.med,
        communities: a
            .communities
            .iter()
            .map(|c| format!("{}:{}", c >> 16, c & 0xffff))
            .collect(),
        large_communities: a
            .large_communities
            .iter()
            .map(|c| format!("{}:{}:{}", c[0], c[1], c[2]))
            .collect(),
        extended_communities: a.extended_communities.iter().map(|c| format!("{c:016x}")).collect(),
        next_hop: a.next_hop.map(|h| h.to_string()),
    }
}

fn publish(board: &AnycastBoard, a: &Announcer, ss: &Sessions, pops: &[String], now: Instant) {
    let routes = a
        .status(now)
        .into_iter()
        .map(|r| {
            let (standing, until) = match &r.standing {
                Standing::Announced => ("announced", None),
                Standing::Depreferred => ("depreferred", None),
                Standing::Draining { until } => ("draining", Some(*until)),
                Standing::Drained => ("drained", None),
                Standing::Withdrawn => ("withdrawn", None),
                Standing::Suppressed { until } => ("suppressed", Some(*until)),
                Standing::Refused(_) => ("refused", None),
            };
            AnycastRoute {
                service: r.service,
                pop: pops.get(r.pop.index()).cloned().unwrap_or_default(),
                prefix: r.prefix.to_string(),
                session_up: ss.up.contains_key(&r.neighbour),
                session_error: (!ss.up.contains_key(&r.neighbour))
                    .then(|| ss.down_reason.get(&r.neighbour).cloned())
                    .flatten(),
                not_sent: ss.not_sent.get(&(r.neighbour.clone(), r.prefix)).map(|s| s.to_string()),
                neighbor: r.neighbour,
                standing: standing.to_string(),
                since_unix: unix_at(r.since, now),
                until_unix: until.map(|u| unix_at(u, now)),
                why: r.why,
                attributes: r.attrs.as_ref().map(api_attrs),
                penalty: r.penalty,
            }
        })
        .collect();
    *board.status.lock().expect("anycast board") = AnycastStatus {
        routes,
        updates_sent: a.updates,
        flips: a.flips,
    };
}

/// Renders the board at scrape time.
#[derive(Debug)]
pub struct AnycastCollector(pub Arc<AnycastBoard>);

impl Collector for AnycastCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let st = self.0.snapshot();
        let mut me = enc.encode_descriptor(
            "petrel_anycast_announced",
            "1 if the prefix is announced to the neighbour (normally, de-preferred or draining)",
            None,
            ConstGauge::new(0i64).metric_type(),
        )?;
        for r in &st.routes {
            let labels = vec![
                ("service", r.service.clone()),
                ("prefix", r.prefix.clone()),
                ("neighbor", r.neighbor.clone()),
                ("standing", r.standing.clone()),
            ];
            ConstGauge::new(r.attributes.is_some() as i64).encode(me.encode_family(&labels)?)?;
        }
        let mut me = enc.encode_descriptor(
            "petrel_anycast_damping_penalty",
            "RFC 2439 figure of merit of the prefix (our own flaps)",
            None,
            ConstGauge::new(0f64).metric_type(),
        )?;
        let mut seen = std::collections::HashSet::new();
        for r in &st.routes {
            if seen.insert((r.service.clone(), r.prefix.clone())) {
                let labels = vec![("service", r.service.clone()), ("prefix", r.prefix.clone())];
                ConstGauge::new(r.penalty).encode(me.encode_family(&labels)?)?;
            }
        }
        for (name, help, v) in [
            (
                "petrel_anycast_changes_sent",
                "Announcements and withdrawals sent to neighbours",
                st.updates_sent,
            ),
            (
                "petrel_anycast_flips",
                "Health-driven changes of a prefix (after hold-down and damping)",
                st.flips,
            ),
        ] {
            let me = enc.encode_descriptor(name, help, None, ConstCounter::new(0u64).metric_type())?;
            ConstCounter::new(v).encode(me)?;
        }
        Ok(())
    }
}

pub fn spawn(publisher: Arc<Publisher>, board: Arc<AnycastBoard>) -> AnnounceTx {
    let (tx, rx) = mpsc::unbounded_channel();
    let t = tx.clone();
    publisher.subscribe(move |_, c| {
        let _ = t.send(AnnounceMsg::Published {
            reload: c.kind == ChangeKind::Reload,
        });
    });
    tokio::spawn(run(publisher, rx, board));
    tx
}

async fn run(publisher: Arc<Publisher>, mut rx: mpsc::UnboundedReceiver<AnnounceMsg>, board: Arc<AnycastBoard>) {
    let g = publisher.load_full();
    let mut our_as = g.config().bgp.as_ref().map_or(Asn(0), |b| b.asn);
    let mut a = Announcer::new(conf_of(&g).unwrap_or_default());
    let mut states: Vec<PopState> = g.states.to_vec();
    let mut pops: Vec<String> = g.config().pops.iter().map(|p| p.name.clone()).collect();
    drop(g);
    a.observe(&states, Instant::now());
    let mut ss = Sessions::default();
    publish(&board, &a, &ss, &pops, Instant::now());
    loop {
        // A drain's grace period and damping also change what `status`
        // says (until when): refresh the board at least every second
        // while anything is timed.
        let wake = a
            .next_wake(&states, Instant::now())
            .map(|w| w.min(Instant::now() + Duration::from_secs(1)));
        let msg = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => Some(m),
                None => return,
            },
            _ = sleep_until(wake) => None,
        };
        let now = Instant::now();
        match msg {
            Some(AnnounceMsg::Up {
                name,
                ctl,
                ctx,
                families,
                extended_next_hop,
                local,
            }) => {
                let session = Session {
                    ctx,
                    families,
                    extended_next_hop,
                    local,
                    our_as,
                };
                let changes = a.session_up(&name, now);
                let u = Up { ctl, session };
                send(&name, &u, &changes, &mut ss.not_sent);
                ss.up.insert(name.clone(), u);
                ss.down_reason.remove(&name);
                publish(&board, &a, &ss, &pops, now);
                continue;
            }
            Some(AnnounceMsg::Down { name, reason }) => {
                a.session_down(&name);
                ss.up.remove(&name);
                ss.down_reason.insert(name, reason);
                publish(&board, &a, &ss, &pops, now);
                continue;
            }
            Some(AnnounceMsg::Published { reload }) => {
                let g = publisher.load_full();
                if reload {
                    our_as = g.config().bgp.as_ref().map_or(Asn(0), |b| b.asn);
                    a.reconfigure(conf_of(&g).unwrap_or_default());
                    for u in ss.up.values_mut() {
                        u.session.our_as = our_as;
                    }
                }
                states = g.states.to_vec();
                pops = g.config().pops.iter().map(|p| p.name.clone()).collect();
            }
            None => {}
        }
        a.observe(&states, now);
        for (name, u) in &ss.up {
            let changes = a.changes_for(name, now);
            send(name, u, &changes, &mut ss.not_sent);
        }
        publish(&board, &a, &ss, &pops, now);
    }
}

/// Encode and hand to the session; one log line per change. A change the
/// session cannot carry is logged and remembered for `petrel anycast`.
fn send(name: &str, u: &Up, changes: &[Change], not_sent: &mut HashMap<(String, Prefix), &'static str>) {
    if changes.is_empty() {
        return;
    }
    let mut bytes = Vec::new();
    for c in changes {
        let p = match c {
            Change::Announce(p, _) | Change::Withdraw(p) => *p,
        };
        match wire::encode(c, &u.session, &mut bytes) {
            Ok(()) => {
                not_sent.remove(&(name.to_string(), p));
                match c {
                    Change::Announce(p, attrs) => {
                        tracing::info!(peer = name, prefix = %p, prepend = attrs.prepend, med = ?attrs.med,
                            communities = attrs.communities.len(), "anycast: announced");
                    }
                    Change::Withdraw(p) => tracing::info!(peer = name, prefix = %p, "anycast: withdrawn"),
                }
            }
            Err(e) => {
                let why = match e {
                    Unsendable::Family => "the session did not negotiate this family",
                    Unsendable::NextHop => {
                        "no next hop of this family (set `next_hop` for the neighbor, or let the session negotiate extended next hops, RFC 8950)"
                    }
                };
                tracing::warn!(peer = name, change = ?c, "anycast: {why}; not sent");
                not_sent.insert((name.to_string(), p), why);
            }
        }
    }
    if !bytes.is_empty() {
        let _ = u.ctl.send(PeerCtl::Announce(bytes));
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}
