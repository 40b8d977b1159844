//! Shared vocabulary of petrel: the words every other crate speaks.
//!
//! Kept deliberately tiny and dependency-light: addresses and prefixes, POP
//! indices and the administrative/health state of a POP.

#![forbid(unsafe_code)]

mod blame;
mod pop;
mod prefix;

pub use blame::Blame;
pub use pop::{Asn, PopIdx, PopState, ServiceIdx};
pub use prefix::{Family, Prefix, PrefixError};
