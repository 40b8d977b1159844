//! Errors of the decision core, each with who is to blame: that sets the log
//! level, the metric and the HTTP status of the admin API.

use petrel_config::Location;
use petrel_dns_zone::ZoneError;
pub use petrel_types::Blame;
use petrel_types::Prefix;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DirectorError {
    #[error("unknown POP `{0}`")]
    UnknownPop(String),
    #[error("unknown POP or check target `{0}`")]
    UnknownTarget(String),
    #[error("no service `{name}`; services are: {known}")]
    UnknownService { name: String, known: String },
    #[error("{0}")]
    BadRequest(String),
    /// The operator state could not be recorded; nothing was changed.
    #[error("{0}")]
    StateFile(String),
}

impl DirectorError {
    pub fn blame(&self) -> Blame {
        match self {
            DirectorError::UnknownPop(_)
            | DirectorError::UnknownTarget(_)
            | DirectorError::UnknownService { .. }
            | DirectorError::BadRequest(_) => Blame::Client,
            DirectorError::StateFile(_) => Blame::Internal,
        }
    }

    /// The request named something that does not exist (HTTP 404).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            DirectorError::UnknownPop(_) | DirectorError::UnknownTarget(_) | DirectorError::UnknownService { .. }
        )
    }
}

/// One problem found while building a generation from a config and its
/// files; each names the file, line and field (the config's own problems
/// are `petrel_config::ConfigError`s, found before).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The GeoIP database cannot be read.
    #[error("{at}: geoip.database: {}: {reason}", file.display())]
    Geo {
        at: Location,
        file: PathBuf,
        reason: String,
    },
    /// An MRT dump cannot be opened.
    #[error("{}: bgp.mrt[{index}]: {}: {}", config.display(), file.display(), cannot_read(reason))]
    Mrt {
        config: PathBuf,
        index: usize,
        file: PathBuf,
        reason: String,
    },
    /// A zone file or CIDR map file cannot be read (`field` names the key).
    #[error("{at}: {field}: {}: {}", file.display(), cannot_read(reason))]
    Unreadable {
        at: Location,
        field: &'static str,
        file: PathBuf,
        reason: String,
    },
    /// A zone's DNSSEC key cannot be read or used.
    #[error("{at}: zone.dnssec: {}: {reason}", file.display())]
    Key {
        at: Location,
        file: PathBuf,
        reason: String,
    },
    /// A zone file's content is wrong.
    #[error("{}: {error} (zone listed at {at})", file.display())]
    Zone {
        file: PathBuf,
        at: Location,
        error: ZoneError,
    },
    /// A CIDR map file's line is wrong.
    #[error("{}:{line}: {message}", file.display())]
    MapLine {
        file: PathBuf,
        line: usize,
        message: String,
    },
    /// A CIDR map names a POP the service may not answer with.
    #[error("{}: POP `{pop}` (for {prefix}) is not a candidate of service {service}", file.display())]
    NotCandidate {
        file: PathBuf,
        pop: String,
        prefix: Prefix,
        service: String,
    },
    /// The VRP file cannot be used.
    #[error("{at}: bgp.vrp_file: {}: {reason}", file.display())]
    Vrps {
        at: Location,
        file: PathBuf,
        reason: String,
    },
    /// An anycast prefix would be RPKI-invalid from our AS.
    #[error("{}: anycast block `{service}`: {prefix} cannot be announced: {reason}", config.display())]
    Announcement {
        config: PathBuf,
        service: String,
        prefix: Prefix,
        reason: String,
    },
    /// A service's name or per-POP CNAME target clashes with zone data.
    #[error("{}service {service}: {error}", config.as_ref().map_or(String::new(), |c| format!("{}: ", c.display())))]
    Service {
        config: Option<PathBuf>,
        service: String,
        error: ZoneError,
    },
}

impl BuildError {
    pub fn blame(&self) -> Blame {
        Blame::Config
    }
}

/// "cannot read: " and why, said once (the reader may have said it).
fn cannot_read(reason: &str) -> String {
    if reason.starts_with("cannot read") {
        reason.to_string()
    } else {
        format!("cannot read: {reason}")
    }
}
