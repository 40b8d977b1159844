//! Static DNS data: zones read from RFC 1035 zone files (by `domain`'s
//! scanner) and indexed by lower-case owner name for the answer path, with
//! the names where mapped services answer and the synthetic per-POP names
//! of CNAME-mode services.

#![forbid(unsafe_code)]

pub mod signed;
mod zone;
mod zonefile;

pub use zone::{Node, RecordIn, RrSet, Zone, ZoneBuild, ZoneError, ZoneSet, ZoneSetBuilder};
pub use zonefile::{parse_zone_file, parse_zone_file_with};
