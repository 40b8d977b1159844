/// Who caused an error: it sets the log level, the metric and the HTTP
/// status an error gets, wherever it surfaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Blame {
    /// A request named something that does not exist or is malformed.
    Client,
    /// A network peer sent something wrong (a BGP neighbour, a router).
    Peer,
    /// The configuration or a file it names.
    Config,
    /// Petrel itself or its host (a file that cannot be written).
    Internal,
}
