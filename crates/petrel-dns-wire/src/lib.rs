//! DNS wire format for petrel's answer path.
//!
//! Why our own codec and not `domain` or `hickory-proto` here: the answer path
//! parses one query shape (one question, maybe an OPT) and writes a handful of
//! records per packet hundreds of thousands of times a second. This crate does
//! exactly that over borrowed input and caller-owned buffers, without
//! allocating. Zone files are read with `domain` elsewhere; `hickory-proto`
//! serves as an independent oracle in the tests.

#![forbid(unsafe_code)]

pub mod consts;
pub mod name;
mod query;
mod response;
mod writer;

pub use query::{parse_query, ClientSubnet, Cookie, Edns, Query, QueryError, Question};
pub use response::{summarize_reply, ReplySummary};
pub use writer::{Full, MessageWriter, Section};
