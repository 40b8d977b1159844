//! What the BGP tasks say to each other: the messages that feed the RIB
//! thread (from sessions, BMP stations and the manager) and the controls
//! that go back to a session.

use petrel_bgp_wire::UpdateBatch;
pub use petrel_rib::owner::{Exceeded, Limits};
use petrel_rib::PeerInfo;
use petrel_types::Prefix;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// To a session task.
pub enum PeerCtl {
    /// Cease with this subcode and end the task.
    Stop(u8),
    /// The peer went past a limit: Cease/1 or Cease/8 (RFC 4486), then
    /// retry later.
    OverLimit(Exceeded),
    /// UPDATEs from the anycast announcer, to write while Established.
    Announce(Vec<u8>),
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
        limits: Limits,
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
    /// Whether publications carry the prefix boundaries (the latency
    /// policy's BGP map units need them).
    IndexPrefixes(bool),
    Route {
        client: Prefix,
        view: Option<String>,
        reply: oneshot::Sender<Vec<ViewRoutes>>,
    },
    /// Publish what is pending now, whatever the pacing, and say when it
    /// is done (offline commands, once their dumps are read).
    PublishNow(oneshot::Sender<()>),
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

pub use petrel_api::{RouteLine, ViewRoutes};

/// Spent batches a feed keeps for reuse (as a session keeps them).
const SPARE: usize = 2;

/// The storage a feed without a session of its own (a BMP station, an MRT
/// reader) parses UPDATEs into: the RIB sends each applied batch back on
/// [`Recycler::sender`], and the next UPDATEs are parsed into it, so a
/// table loads without an allocation per UPDATE and nothing allocated by
/// the feed's thread is freed on the RIB's.
pub struct Recycler {
    spare: Vec<UpdateBatch>,
    hashes: Vec<Vec<u64>>,
    spent: (mpsc::UnboundedSender<PeerCtl>, mpsc::UnboundedReceiver<PeerCtl>),
}

impl Default for Recycler {
    fn default() -> Self {
        Recycler {
            spare: Vec::new(),
            hashes: Vec::new(),
            spent: mpsc::unbounded_channel(),
        }
    }
}

impl Recycler {
    /// Where the RIB sends this feed's applied batches (a peer's `ctl`).
    pub fn sender(&self) -> mpsc::UnboundedSender<PeerCtl> {
        self.spent.0.clone()
    }

    /// An empty batch to parse into: one the RIB sent back, if any.
    pub fn batch(&mut self) -> UpdateBatch {
        while let Ok(c) = self.spent.1.try_recv() {
            if let PeerCtl::Spent(RibBatch { mut updates, hashes }) = c {
                if self.spare.len() < SPARE {
                    updates.recycle();
                    self.spare.push(updates);
                    self.hashes.push(hashes);
                }
            }
        }
        self.spare.pop().unwrap_or_default()
    }

    /// A filled batch with its attribute hashes, for the RIB.
    pub fn seal(&mut self, updates: UpdateBatch) -> RibBatch {
        RibBatch::new(updates, self.hashes.pop().unwrap_or_default())
    }
}
