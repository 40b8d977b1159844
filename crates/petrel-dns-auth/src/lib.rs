//! The synchronous answer pipeline of the authoritative DNS channel.
//!
//! [`answer`] turns one query packet into one reply in a caller-owned
//! buffer, from one [`petrel_director::Generation`]: static data from its
//! zones, mapped names from [`petrel_director::Generation::decide`].
//! Synchronous, no IO, no clock, no allocation. [`rrl`] limits the rate
//! of UDP responses per client network.

#![forbid(unsafe_code)]

mod answer;
pub mod cookie;
mod dnssec;
pub mod dnstap;
pub mod rrl;
pub mod xfr;

pub use answer::{answer, AnswerInfo, Client, WhoamiAsked};
// Zones live in their own crate; these names stay reachable from here.
pub use petrel_dns_zone::{parse_zone_file, RecordIn, ZoneError, ZoneSet, ZoneSetBuilder};
