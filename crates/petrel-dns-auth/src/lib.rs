//! Authoritative data and the answer pipeline.
//!
//! [`ZoneSet`] holds static zones (read from RFC 1035 zone files by
//! `domain`'s parser) and the names of mapped services. [`answer`] turns one
//! query packet into one reply in a caller-owned buffer: synchronous, no IO,
//! no clock, no allocation.

mod answer;
mod zone;
mod zonefile;

pub use answer::{answer, AnswerInfo, AnswerLimits, AuthData, Client, PopAddrs, ServiceAnswer, ServiceMode};
pub use zone::{RecordIn, ZoneError, ZoneSet, ZoneSetBuilder};
pub use zonefile::parse_zone_file;
