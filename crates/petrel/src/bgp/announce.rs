//! The anycast announcer's shell: it follows the decision core's
//! publications (POP states, reloads), keeps `petrel_anycast::Announcer`,
//! and hands each session the UPDATEs it should write. Sessions tell it
//! when they come up (with what they negotiated) and go down.

use super::feed::PeerCtl;
use petrel_anycast::wire::{self, Session, Unsendable};
use petrel_anycast::{Announcer, Change};
use petrel_config::Config;
use petrel_director::{ChangeKind, Generation, Publisher};
use petrel_types::{Asn, PopState};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

pub enum AnnounceMsg {
    /// A session reached Established.
    Up {
        name: String,
        ctl: mpsc::UnboundedSender<PeerCtl>,
        ctx: petrel_bgp_wire::SessionCtx,
        families: [bool; 2],
        local: IpAddr,
    },
    Down {
        name: String,
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

pub fn spawn(publisher: Arc<Publisher>) -> AnnounceTx {
    let (tx, rx) = mpsc::unbounded_channel();
    let t = tx.clone();
    publisher.subscribe(move |_, c| {
        let _ = t.send(AnnounceMsg::Published {
            reload: c.kind == ChangeKind::Reload,
        });
    });
    tokio::spawn(run(publisher, rx));
    tx
}

async fn run(publisher: Arc<Publisher>, mut rx: mpsc::UnboundedReceiver<AnnounceMsg>) {
    let g = publisher.load_full();
    let empty = petrel_anycast::Config {
        services: Vec::new(),
        safety: petrel_anycast::safety::Safety {
            owned: Vec::new(),
            max_len_v4: 24,
            max_len_v6: 48,
            origin: Asn(0),
            vrps: None,
        },
        damping: Default::default(),
        hold_down: Default::default(),
    };
    let mut our_as = g.config().bgp.as_ref().map_or(Asn(0), |b| b.asn);
    let mut a = Announcer::new(conf_of(&g).unwrap_or_else(|| empty.clone()));
    let mut states: Vec<PopState> = g.states.to_vec();
    drop(g);
    a.observe(&states, Instant::now());
    let mut up: HashMap<String, Up> = HashMap::new();
    loop {
        let wake = a.next_wake(&states, Instant::now());
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
                local,
            }) => {
                let session = Session {
                    ctx,
                    families,
                    local,
                    our_as,
                };
                let changes = a.session_up(&name, now);
                let u = Up { ctl, session };
                send(&name, &u, &changes);
                up.insert(name, u);
                continue;
            }
            Some(AnnounceMsg::Down { name }) => {
                a.session_down(&name);
                up.remove(&name);
                continue;
            }
            Some(AnnounceMsg::Published { reload }) => {
                let g = publisher.load_full();
                if reload {
                    our_as = g.config().bgp.as_ref().map_or(Asn(0), |b| b.asn);
                    a.reconfigure(conf_of(&g).unwrap_or_else(|| empty.clone()));
                    for u in up.values_mut() {
                        u.session.our_as = our_as;
                    }
                }
                states = g.states.to_vec();
            }
            None => {}
        }
        a.observe(&states, now);
        for (name, u) in &up {
            let changes = a.changes_for(name, now);
            send(name, u, &changes);
        }
    }
}

/// Encode and hand to the session; one log line per change.
fn send(name: &str, u: &Up, changes: &[Change]) {
    if changes.is_empty() {
        return;
    }
    let mut bytes = Vec::new();
    for c in changes {
        match wire::encode(c, &u.session, &mut bytes) {
            Ok(()) => match c {
                Change::Announce(p, attrs) => {
                    tracing::info!(peer = name, prefix = %p, prepend = attrs.prepend, med = ?attrs.med,
                        communities = attrs.communities.len(), "anycast: announced");
                }
                Change::Withdraw(p) => tracing::info!(peer = name, prefix = %p, "anycast: withdrawn"),
            },
            Err(Unsendable::Family) => {
                tracing::warn!(peer = name, change = ?c, "anycast: the session did not negotiate this family; not sent")
            }
            Err(Unsendable::NextHop) => tracing::warn!(peer = name, change = ?c,
                "anycast: no next hop of this family (set `next_hop` for the neighbor); not sent"),
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
