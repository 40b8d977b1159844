//! What the BGP tasks say to each other: the messages that feed the RIB
//! thread (from sessions, BMP stations and the manager) and the controls
//! that go back to a session.

use petrel_bgp_wire::{ParsedUpdate, UpdateBatch};
use petrel_rib::PeerInfo;
use petrel_types::Prefix;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// To a session task.
pub enum PeerCtl {
    /// Cease with this subcode and end the task.
    Stop(u8),
    /// Cease/1 (RFC 4486), then retry later.
    MaxPrefix(u32),
    /// A connection from the peer's address, for a passive session.
    Accepted(TcpStream),
    /// A batch the RIB has applied, back to the session that parsed it:
    /// the session's next UPDATEs are parsed into its storage, so that a
    /// table loads without an allocation per UPDATE (and nothing allocated
    /// on the session thread is freed on the RIB thread, where it would
    /// contend for the session thread's malloc arena).
    Spent(RibBatch),
}

pub use petrel_rib::owner::Slot;

/// A slot no other peer has had.
pub fn new_slot() -> Slot {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

pub enum RibMsg {
    /// A configured peer: its routes go to the view of `pop`.
    AddPeer {
        slot: Slot,
        name: String,
        pop: String,
        info: PeerInfo,
        max_prefix: Option<u32>,
        ctl: mpsc::UnboundedSender<PeerCtl>,
    },
    RemovePeer(Slot),
    Up {
        slot: Slot,
        info: PeerInfo,
        /// IPv4 and IPv6 unicast as negotiated: each ends the initial sync
        /// with an End-of-RIB.
        families: [bool; 2],
    },
    /// The UPDATEs of one read, in order.
    Update(Slot, RibBatch),
    Down(Slot),
    /// The POP list changed (reload): view-to-POP indexes are rebuilt.
    Pops(Vec<String>),
    Route {
        client: Prefix,
        view: Option<String>,
        reply: oneshot::Sender<Vec<ViewRoutes>>,
    },
}

/// UPDATEs with the pool hash of each one's attributes, computed by the
/// task that parsed them (the RIB thread is the busier one while a table
/// loads). Goes back to that task once applied (`PeerCtl::Spent`).
pub struct RibBatch {
    pub updates: UpdateBatch,
    /// One per update; 0 for those that announce nothing.
    pub hashes: Vec<u64>,
}

impl RibBatch {
    /// `hashes`: a vector to fill (its contents are replaced).
    pub fn new(updates: UpdateBatch, mut hashes: Vec<u64>) -> RibBatch {
        hashes.clear();
        hashes.extend(updates.as_slice().iter().map(|u| {
            if u.announced.is_empty() {
                0
            } else {
                petrel_rib::attr_hash(&u.attrs)
            }
        }));
        RibBatch { updates, hashes }
    }
}

impl From<ParsedUpdate> for RibBatch {
    fn from(u: ParsedUpdate) -> Self {
        RibBatch::new(u.into(), Vec::new())
    }
}

pub use petrel_api::{RouteLine, ViewRoutes};
