//! Petrel's mapping engine.
//!
//! Two halves with different rules:
//! - **build** ([`compile`]): slow, allocates, runs when a generation is
//!   built. Every policy of a service is evaluated once per distinct region
//!   of the address space and the results are compiled into a
//!   longest-prefix-match [`table::Table`] of ranked candidate tiers.
//! - **select** ([`CompiledService::rank`]): runs per query; one table lookup
//!   and a pass over the ranked tiers that skips unusable POPs. It never
//!   allocates, locks or reads the clock.
//!
//! [`CompiledService::explain`] reruns the build-side evaluation for one
//! client with a trace attached, so the explanation and the compiled answer
//! come from the same code.

#![forbid(unsafe_code)]

pub mod bgp;
mod compile;
mod explain;
pub mod geo;
pub mod latency;
mod policy;
mod rank;
pub mod routed;
pub mod table;

pub use bgp::{BgpData, BgpDataBuilder, BgpPath};
pub use compile::{compile, compile_with, CompiledService};
pub use explain::{
    ClientPlace, DecidedBy, ExplainPop, ExplainStep, Explanation, HttpUse, PopDistance, PopHops, PopLatency, PopScore,
    StepFacts, ViewPath,
};
pub use geo::{GeoLocation, GeoTable};
pub use latency::{LatencyData, LatencyUnit, Measured};
pub use policy::{CidrMap, Fallback, Policy, PopInfo, ServiceSpec, Warming, WeightMode};
pub use rank::{RankOut, MAX_ANSWERS, MAX_CANDIDATES};

#[doc(hidden)]
pub mod testworld;
