//! Petrel's measurement loop, without IO.
//!
//! Real users' latency is the best mapping signal there is; this crate
//! holds what petrel does with it, apart from sockets, storage and clocks
//! (time is always passed in):
//!
//! - [`sample`]: one measurement (RUM beacon, passive connection RTT, an
//!   imported line), and the map unit a client belongs to (its BGP prefix,
//!   else its /24 or /48);
//! - [`beacon`]: what comes in from outside, checked and refused whole
//!   with a counted reason when it is malformed, oversized or impossible;
//! - [`aggregate`]: decayed latency aggregates per (unit, POP) that merge
//!   exactly, so units roll up into prefixes and ASes and collectors
//!   combine; medians, p90 and the confidence of the median;
//! - [`rum`]: the JavaScript tag sites include, with the config's
//!   settings written in;
//! - [`ranking`]: the latency policy's tiers for one unit: POPs ordered by
//!   median, apart only where the difference is real and worth having;
//! - [`store`]: every unit's aggregates, bounded in units and pruned as
//!   they fade;
//! - [`table`]: the latency policy's input from every unit's aggregates,
//!   with roll-ups for units that have too few samples of their own;
//! - [`routing`]: a client's BGP prefix, covering prefix, origin AS and
//!   metro, from the routing views and GeoIP;
//! - [`context`]: what an alert watches (a unit or an AS) and the path
//!   changes that concern it;
//! - [`alert`]: the state machine that opens an alert when a network gets
//!   slower to a POP than its baseline, and closes it on recovery.

#![forbid(unsafe_code)]

pub mod aggregate;
pub mod alert;
pub mod beacon;
pub mod context;
pub mod ranking;
pub mod routing;
pub mod rum;
pub mod sample;
pub mod store;
pub mod table;
pub mod whoami;

pub use aggregate::{Aggregate, Decay, Summary};
pub use sample::{unit_of, Kind, Sample, UnitMode};
