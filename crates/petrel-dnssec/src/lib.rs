//! DNSSEC signing for an authoritative server that signs online (RFC 4033-
//! 4035), without IO or a clock: time comes in as Unix seconds.
//!
//! - [`key`]: signing keys read from (and written to) BIND's key files
//!   (`K<zone>+<alg>+<tag>.key` / `.private`, as `dnssec-keygen` and
//!   `ldns-keygen` write them): ECDSA P-256 with SHA-256 (algorithm 13,
//!   RFC 6605) and Ed25519 (15, RFC 8080); the DNSKEY, its key tag and DS.
//! - [`rrsig`]: the canonical form of an RRset (RFC 4034 §6) and its
//!   RRSIG. [`rrsig::SignedData`] writes the data to sign into a caller's
//!   buffer, so that a signature made while answering allocates nothing.
//! - [`tsig`]: TSIG (RFC 8945) for zone transfers.
//! - [`nsec`]: type bitmaps and the NSEC records of compact denial of
//!   existence (RFC 9824), the only denial an online signer needs.

#![forbid(unsafe_code)]

pub mod key;
pub mod nsec;
pub mod rrsig;
pub mod tsig;

pub use key::{Algorithm, Key, KeyError};
pub use rrsig::{SignError, Validity};

/// RR types this crate speaks of.
pub mod rtype {
    pub const DS: u16 = 43;
    pub const RRSIG: u16 = 46;
    pub const NSEC: u16 = 47;
    pub const DNSKEY: u16 = 48;
    pub const CDS: u16 = 59;
    pub const CDNSKEY: u16 = 60;
    /// RFC 9824: the pseudo-type that marks a name that does not exist.
    pub const NXNAME: u16 = 128;
}
