use serde::{Deserialize, Serialize};

/// Index of a POP inside one generation's POP list.
///
/// POP names live in the config; every compiled structure refers to POPs by
/// this dense index so that per-POP state is a plain slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PopIdx(pub u16);

impl PopIdx {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Index of a mapped service inside one generation's service list (the
/// configured order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServiceIdx(pub u16);

impl ServiceIdx {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// What a POP may be used for right now.
///
/// `Drained` is an operator's decision, `Down` is what the health checks
/// (or the config) say; both keep the POP out of new decisions. `Degraded`
/// POPs still serve, with shorter TTLs so that clients move quickly if it
/// gets worse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum PopState {
    #[default]
    Up,
    Degraded,
    Down,
    Drained,
}

impl PopState {
    pub fn is_usable(self) -> bool {
        matches!(self, PopState::Up | PopState::Degraded)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PopState::Up => "up",
            PopState::Degraded => "degraded",
            PopState::Down => "down",
            PopState::Drained => "drained",
        }
    }
}

/// An autonomous system number (4 octets, RFC 6793): the identity of a
/// network, as the config and the engine name POPs' and peers' ASes. AS
/// paths stay plain numbers: they are data read off the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Asn(pub u32);

impl std::fmt::Display for Asn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}
