//! Petrel's configuration.
//!
//! The file is read in two steps: TOML into raw structs ([`raw`]) that reject
//! unknown keys and keep the position of every value, then validation into
//! domain types ([`Config`]) that reports every problem at once, each with
//! file, line, column and the dotted field name. `petrel check` and
//! `petrel serve` go through the same path. No IO happens here: the caller
//! hands in text, and reads the files the config names.

#![forbid(unsafe_code)]

mod anycast;
mod cidr;
mod diff;
mod error;
mod http;
mod measure;
mod model;
mod raw;
mod reference;
mod validate;

pub use cidr::parse_cidr_map;
pub use diff::{bgp_diff, BgpDiff, StopReason};
pub use error::{ConfigError, Location};
pub use model::{
    BgpBmpConf, BgpConf, BgpMrtConf, BgpPeerConf, CheckKind, CidrFile, ClickhouseConf, Config, CookieConf, DnssecConf,
    DnstapConf, DnstapSink, HealthCheck, HttpCertConf, HttpConf, Initial, MeasureConf, Pop, RrlConf, ServerConf,
    ServiceConf, TlsCheck, TransferConf, TsigConf, Webhook, Whoami, ZoneConf, RRL_KINDS,
};
pub use reference::reference;
pub use validate::parse;
