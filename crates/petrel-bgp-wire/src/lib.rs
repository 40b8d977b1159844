//! BGP-4 messages on the wire (RFC 4271), without IO.
//!
//! [`decode`] frames one message out of a byte stream and parses it;
//! UPDATE bodies stay borrowed until [`Update::parse`] turns them into
//! withdrawals, announcements and one owned attribute set, applying RFC 7606
//! (revised error handling): a malformed attribute leads to
//! treat-as-withdraw or attribute-discard where the RFC allows it, and only
//! what cannot be recovered ends the session with the NOTIFICATION the RFC
//! names. [`encode`] writes messages (our OPENs, KEEPALIVEs, NOTIFICATIONs,
//! and UPDATEs for announcements and test fixtures). [`mrt`] reads and
//! writes routing dumps, [`bmp`] the monitoring stream routers send.

#![forbid(unsafe_code)]

pub mod attrs;
mod batch;
pub mod bmp;
mod cursor;
mod encode;
mod message;
pub mod mrt;
mod nlri;
mod open;

pub use attrs::{AsPathSegment, Attributes, Origin, UnknownAttr};
pub use batch::UpdateBatch;
pub use encode::{encode, encode_update, UpdateOut};
pub use message::{decode, DecodeError, Message, Notification, ParsedUpdate, RouteRefresh, Update};
pub use nlri::{Afi, Nlri, Safi};
pub use open::{Capability, Open};

/// What decoding a session's messages depends on (negotiated in OPEN).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionCtx {
    /// RFC 6793: AS_PATH carries 4-octet AS numbers.
    pub four_octet_as: bool,
    /// RFC 7911: NLRI carry a path identifier (receive side), per family.
    pub add_path_v4: bool,
    pub add_path_v6: bool,
    /// RFC 8654: messages up to 65535 octets.
    pub extended_messages: bool,
    /// RFC 7606 §7.5 distinguishes internal and external peers.
    pub ibgp: bool,
}

impl SessionCtx {
    pub fn max_message_len(&self) -> usize {
        if self.extended_messages {
            65535
        } else {
            4096
        }
    }
}

/// NOTIFICATION codes and subcodes (RFC 4271 §4.5, RFC 4486).
pub mod notif {
    pub const MESSAGE_HEADER: u8 = 1;
    pub const OPEN_MESSAGE: u8 = 2;
    pub const UPDATE_MESSAGE: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM_ERROR: u8 = 5;
    pub const CEASE: u8 = 6;
    // Message header subcodes.
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    pub const BAD_MESSAGE_TYPE: u8 = 3;
    // OPEN subcodes.
    pub const UNSUPPORTED_VERSION: u8 = 1;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
    // UPDATE subcodes.
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    pub const UNRECOGNIZED_WELL_KNOWN: u8 = 2;
    pub const MISSING_WELL_KNOWN: u8 = 3;
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    pub const INVALID_ORIGIN: u8 = 6;
    pub const INVALID_NEXT_HOP: u8 = 8;
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    pub const MALFORMED_AS_PATH: u8 = 11;
    // Cease subcodes (RFC 4486).
    pub const MAX_PREFIXES_REACHED: u8 = 1;
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    pub const PEER_DECONFIGURED: u8 = 3;
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    pub const CONNECTION_REJECTED: u8 = 5;
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    pub const OUT_OF_RESOURCES: u8 = 8;
}
