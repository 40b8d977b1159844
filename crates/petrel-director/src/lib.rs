//! The decision core every channel asks: which POPs for this client?
//!
//! - [`build`]: a config and the files it names (already read by the
//!   caller) compile into a [`Built`]: zones, the service registry with
//!   compiled tables, the POP list, GeoIP and routing views. Pure and slow.
//! - [`Generation`]: one immutable snapshot, a `Built` and the POP states
//!   of the moment. [`Generation::decide`] is the answer of every channel
//!   (DNS, the batch map, explain, HTTP, anycast): no allocation, no lock.
//! - [`Publisher`]: the one `ArcSwap` readers load and the one writer lock
//!   that orders reloads, operator overrides, health and inputs (BGP views,
//!   later measurements and load). Nothing slow happens under the lock:
//!   tables are compiled before it is taken. Subscribers hear of every
//!   publication, in order, without polling.
//! - [`state`]: POP-state precedence and the health judgement of a POP from
//!   its targets, over plain values.
//!
//! No IO, no clock, no async runtime: the binary reads files and time and
//! moves bytes; everything here is tested without sockets.

#![forbid(unsafe_code)]

mod build;
mod decide;
mod error;
mod explain;
mod generation;
mod publisher;
pub mod signing;
pub mod state;

pub use build::{build, needs, Built, Need, Service, Sources};
pub use decide::Decision;
pub use error::{Blame, BuildError, DirectorError};
pub use generation::Generation;
pub use publisher::{Change, ChangeKind, Input, Publisher, Reader};
pub use state::{OverrideAction, Overrides, StateInputs};
