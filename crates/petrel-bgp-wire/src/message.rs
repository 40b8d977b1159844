//! Framing and the message types.

use crate::attrs::{self, Attributes};
use crate::nlri::{self, Afi, Nlri};
use crate::open::Open;
use crate::{notif, SessionCtx};
use petrel_types::Family;

const HEADER: usize = 19;

/// Why a message ends the session: the NOTIFICATION to send and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
    pub reason: String,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (NOTIFICATION {}/{})", self.reason, self.code, self.subcode)
    }
}

impl std::error::Error for DecodeError {}

impl DecodeError {
    /// Who is to blame: the peer that sent the message.
    pub fn blame(&self) -> petrel_types::Blame {
        petrel_types::Blame::Peer
    }
}

fn err(code: u8, subcode: u8, data: &[u8], reason: impl Into<String>) -> DecodeError {
    DecodeError {
        code,
        subcode,
        data: data.to_vec(),
        reason: reason.into(),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification<'a> {
    pub code: u8,
    pub subcode: u8,
    pub data: &'a [u8],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteRefresh {
    pub afi: u16,
    pub safi: u8,
}

/// An UPDATE, still borrowed; see [`Update::parse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Update<'a> {
    pub withdrawn: &'a [u8],
    pub attributes: &'a [u8],
    pub nlri: &'a [u8],
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    Open(Open),
    Update(Update<'a>),
    Notification(Notification<'a>),
    Keepalive,
    RouteRefresh(RouteRefresh),
}

/// An UPDATE made sense of.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedUpdate {
    /// Withdrawn routes, including announcements turned into withdrawals by
    /// RFC 7606 treat-as-withdraw.
    pub withdrawn: Vec<Nlri>,
    /// Announced routes (IPv4 NLRI and MP_REACH_NLRI), all with `attrs`.
    pub announced: Vec<Nlri>,
    pub attrs: Attributes,
    /// Set when RFC 7606 treat-as-withdraw applied, with why.
    pub treat_as_withdraw: Option<String>,
    /// Attributes discarded under RFC 7606, with why.
    pub discarded: Vec<String>,
    /// An End-of-RIB marker (RFC 4724) for this family.
    pub end_of_rib: Option<Afi>,
}

impl Update<'_> {
    pub fn parse(&self, ctx: &SessionCtx) -> Result<ParsedUpdate, DecodeError> {
        let mut out = ParsedUpdate::default();
        self.parse_into(ctx, &mut out)?;
        Ok(out)
    }

    /// [`Update::parse`] into `out`, reusing its allocations: what was in
    /// it is replaced. On error `out` holds nothing of use.
    pub fn parse_into(&self, ctx: &SessionCtx, out: &mut ParsedUpdate) -> Result<(), DecodeError> {
        out.withdrawn.clear();
        out.announced.clear();
        out.treat_as_withdraw = None;
        out.discarded.clear();
        out.end_of_rib = None;
        // RFC 7606 §5.3: NLRI that cannot be parsed leave only a reset.
        nlri::parse(self.withdrawn, Family::V4, ctx.add_path_v4, &mut out.withdrawn).map_err(|e| {
            err(
                notif::UPDATE_MESSAGE,
                notif::INVALID_NETWORK_FIELD,
                &[],
                format!("withdrawn routes: {e}"),
            )
        })?;
        nlri::parse(self.nlri, Family::V4, ctx.add_path_v4, &mut out.announced).map_err(|e| {
            err(
                notif::UPDATE_MESSAGE,
                notif::INVALID_NETWORK_FIELD,
                &[],
                format!("NLRI: {e}"),
            )
        })?;
        let mp = attrs::parse_into(self.attributes, ctx, !self.nlri.is_empty(), false, out)?;
        if self.withdrawn.is_empty() && self.attributes.is_empty() && self.nlri.is_empty() {
            out.end_of_rib = Some(Afi::Ipv4);
        } else if self.withdrawn.is_empty()
            && self.nlri.is_empty()
            && mp.reached == 0
            && mp.unreached == 0
            && mp.reach_afi.is_none()
            && self.attributes.len() <= 7
        {
            if let Some(afi) = mp.unreach_afi {
                out.end_of_rib = Some(afi);
            }
        }
        if out.treat_as_withdraw.is_some() {
            out.withdrawn.append(&mut out.announced);
        }
        Ok(())
    }
}

/// Frame and parse one message at the start of `buf`. `Ok(None)` means more
/// bytes are needed; on success the message and its length are returned.
pub fn decode<'a>(buf: &'a [u8], ctx: &SessionCtx) -> Result<Option<(Message<'a>, usize)>, DecodeError> {
    if buf.len() < HEADER {
        return Ok(None);
    }
    if buf[..16].iter().any(|&b| b != 0xff) {
        return Err(err(
            notif::MESSAGE_HEADER,
            notif::CONNECTION_NOT_SYNCHRONIZED,
            &[],
            "bad marker",
        ));
    }
    let len = u16::from_be_bytes([buf[16], buf[17]]) as usize;
    let t = buf[18];
    let bad_len = || {
        err(
            notif::MESSAGE_HEADER,
            notif::BAD_MESSAGE_LENGTH,
            &buf[16..18],
            format!("bad length {len} for message type {t}"),
        )
    };
    let max = if t == 1 || t == 4 { 4096 } else { ctx.max_message_len() };
    if len < HEADER || len > max {
        return Err(bad_len());
    }
    if buf.len() < len {
        return Ok(None);
    }
    let body = &buf[HEADER..len];
    let msg = match t {
        1 => {
            if len < 29 {
                return Err(bad_len());
            }
            Message::Open(Open::parse(body).map_err(|(sub, why)| err(notif::OPEN_MESSAGE, sub, &[], why))?)
        }
        2 => {
            if len < 23 {
                return Err(bad_len());
            }
            let wl = u16::from_be_bytes([body[0], body[1]]) as usize;
            let malformed = || {
                err(
                    notif::UPDATE_MESSAGE,
                    notif::MALFORMED_ATTRIBUTE_LIST,
                    &[],
                    "UPDATE field lengths exceed the message",
                )
            };
            let withdrawn = body.get(2..2 + wl).ok_or_else(malformed)?;
            let al_at = 2 + wl;
            let al = body
                .get(al_at..al_at + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
                .ok_or_else(malformed)?;
            let attributes = body.get(al_at + 2..al_at + 2 + al).ok_or_else(malformed)?;
            let nlri = &body[al_at + 2 + al..];
            Message::Update(Update {
                withdrawn,
                attributes,
                nlri,
            })
        }
        3 => {
            if len < 21 {
                return Err(bad_len());
            }
            Message::Notification(Notification {
                code: body[0],
                subcode: body[1],
                data: &body[2..],
            })
        }
        4 => {
            if len != HEADER {
                return Err(bad_len());
            }
            Message::Keepalive
        }
        5 => {
            if len != 23 {
                return Err(bad_len());
            }
            Message::RouteRefresh(RouteRefresh {
                afi: u16::from_be_bytes([body[0], body[1]]),
                safi: body[3],
            })
        }
        _ => {
            return Err(err(
                notif::MESSAGE_HEADER,
                notif::BAD_MESSAGE_TYPE,
                &[t],
                format!("unknown message type {t}"),
            ))
        }
    };
    Ok(Some((msg, len)))
}
