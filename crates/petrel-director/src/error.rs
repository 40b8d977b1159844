//! Errors of the decision core, each with who is to blame: that sets the log
//! level, the metric and the HTTP status of the admin API.

pub use petrel_types::Blame;

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
/// files; the message names the file, line and field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String);

impl BuildError {
    pub fn blame(&self) -> Blame {
        Blame::Config
    }
}
