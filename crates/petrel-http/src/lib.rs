//! Petrel's HTTP channel, without IO.
//!
//! An HTTP server sees the client itself, where DNS sees only its resolver.
//! This crate holds what the HTTP front decides, apart from sockets:
//!
//! - [`rules`]: which rule a request's host and path match (exact, prefix
//!   or glob paths, exact or wildcard hosts), in order;
//! - [`template`]: the redirect's `Location` from a URL template filled
//!   from the decision (`https://{pop}.cdn.example.net{path}{?query}`);
//! - [`client`]: the client's address: the TCP peer, or what a trusted
//!   proxy says (`X-Forwarded-For`, RFC 7239 `Forwarded`), never what an
//!   untrusted peer says;
//! - [`proxy_protocol`]: HAProxy's PROXY protocol, v1 and v2;
//! - [`remap`]: the edge's end-user remap: serve here, or send a slow
//!   connection to a better POP, at most once;
//! - [`remap_api`]: the same decision asked by another edge server
//!   (`GET /v1/remap`): its parameters and its JSON answer;
//! - [`conn`]: when an idle connection is closed.

#![forbid(unsafe_code)]

pub mod client;
pub mod conn;
pub mod proxy_protocol;
pub mod remap;
pub mod remap_api;
pub mod rules;
pub mod template;
