//! A run of parsed UPDATEs whose storage is used again: a session parses a
//! full table as a million UPDATEs, and parsing each into a fresh
//! [`ParsedUpdate`] cost four allocations and their frees, plus a copy of
//! the struct at every hand-over. A batch keeps the updates it held, and
//! the next ones are parsed into them in place.

use crate::message::{DecodeError, ParsedUpdate, Update};
use crate::SessionCtx;

/// Slots a recycled batch keeps: more than a 64 KiB read can hold UPDATEs.
const KEEP_SLOTS: usize = 4096;
/// Slots a batch keeps however few it used.
const KEEP_IDLE: usize = 16;
/// Prefixes a kept slot may hold room for; a slot that took a larger
/// UPDATE gives the rest of its memory back when recycled.
const KEEP_PREFIXES: usize = 64;

/// Parsed UPDATEs in order. Slots past [`UpdateBatch::len`] hold earlier
/// updates' allocations, ready for the next ones.
#[derive(Clone, Default)]
pub struct UpdateBatch {
    slots: Vec<ParsedUpdate>,
    len: usize,
}

impl UpdateBatch {
    pub fn as_slice(&self) -> &[ParsedUpdate] {
        &self.slots[..self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Parse `u` into the next slot. On error the batch is unchanged.
    pub fn parse_push(&mut self, u: &Update<'_>, ctx: &SessionCtx) -> Result<&mut ParsedUpdate, DecodeError> {
        if self.len == self.slots.len() {
            self.slots.push(ParsedUpdate::default());
        }
        let slot = &mut self.slots[self.len];
        u.parse_into(ctx, slot)?;
        self.len += 1;
        Ok(&mut self.slots[self.len - 1])
    }

    /// The next slot, emptied, to be filled in place (its vectors keep
    /// their room; its attributes are the caller's to set).
    pub fn push_slot(&mut self) -> &mut ParsedUpdate {
        if self.len == self.slots.len() {
            self.slots.push(ParsedUpdate::default());
        }
        let s = &mut self.slots[self.len];
        s.withdrawn.clear();
        s.announced.clear();
        s.treat_as_withdraw = None;
        s.discarded.clear();
        s.end_of_rib = None;
        self.len += 1;
        s
    }

    pub fn push(&mut self, u: ParsedUpdate) {
        if self.len == self.slots.len() {
            self.slots.push(u);
        } else {
            self.slots[self.len] = u;
        }
        self.len += 1;
    }

    /// Empty the batch for reuse. Memory a large or unusual batch took is
    /// given back, so that an idle session holds little: slots beyond
    /// [`KEEP_SLOTS`], most slots when this batch used under a quarter of
    /// them (reads vary in size; slots are not dropped for every smaller
    /// one), and room for more than [`KEEP_PREFIXES`] prefixes in a slot.
    pub fn recycle(&mut self) {
        if self.len * 4 < self.slots.len() {
            self.slots.truncate((self.len * 2).max(KEEP_IDLE));
        }
        self.slots.truncate(KEEP_SLOTS);
        for s in &mut self.slots {
            for v in [&mut s.announced, &mut s.withdrawn] {
                if v.capacity() > KEEP_PREFIXES {
                    v.clear();
                    v.shrink_to(KEEP_PREFIXES);
                }
            }
            if s.attrs.communities.capacity() > KEEP_PREFIXES {
                s.attrs.communities.clear();
                s.attrs.communities.shrink_to(KEEP_PREFIXES);
            }
        }
        self.len = 0;
    }

    /// Bytes the batch holds (an estimate), used or kept.
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<ParsedUpdate>()
            + self
                .slots
                .iter()
                .map(|s| {
                    (s.announced.capacity() + s.withdrawn.capacity()) * std::mem::size_of::<crate::Nlri>()
                        + s.attrs.as_path.capacity() * std::mem::size_of::<crate::AsPathSegment>()
                        + s.attrs.as_path.iter().map(|g| g.asns().len() * 4).sum::<usize>()
                        + s.attrs.communities.capacity() * 4
                })
                .sum::<usize>()
    }
}

impl From<ParsedUpdate> for UpdateBatch {
    fn from(u: ParsedUpdate) -> Self {
        UpdateBatch { slots: vec![u], len: 1 }
    }
}

impl PartialEq for UpdateBatch {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for UpdateBatch {}

impl std::fmt::Debug for UpdateBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, encode_update, AsPathSegment, Attributes, Message, Nlri, Origin, UpdateOut};
    use petrel_types::Prefix;

    fn update(asns: &[u32], prefixes: &[&str]) -> Vec<u8> {
        let attrs = Attributes {
            origin: Some(Origin::Igp),
            as_path: vec![AsPathSegment::Sequence(asns.to_vec())],
            next_hop: Some("192.0.2.1".parse().unwrap()),
            ..Default::default()
        };
        let announced: Vec<Nlri> = prefixes
            .iter()
            .map(|p| Nlri {
                path_id: None,
                prefix: p.parse::<Prefix>().unwrap(),
            })
            .collect();
        let mut buf = Vec::new();
        let ctx = SessionCtx {
            four_octet_as: true,
            ..Default::default()
        };
        encode_update(
            &UpdateOut {
                withdrawn: &[],
                announced: &announced,
                attrs: &attrs,
            },
            &ctx,
            &mut buf,
        );
        buf
    }

    #[test]
    fn slots_are_reused_and_memory_returned() {
        let ctx = SessionCtx {
            four_octet_as: true,
            ..Default::default()
        };
        let big: Vec<String> = (0..200).map(|i| format!("10.{}.{}.0/24", i / 256, i % 256)).collect();
        let big: Vec<&str> = big.iter().map(String::as_str).collect();
        let wires = [update(&[1, 2, 3], &big), update(&[4], &["192.0.2.0/24"])];
        let mut b = UpdateBatch::default();
        for w in &wires {
            let Some((Message::Update(u), _)) = decode(w, &ctx).unwrap() else {
                panic!()
            };
            b.parse_push(&u, &ctx).unwrap();
        }
        assert_eq!(b.len(), 2);
        assert_eq!(b.as_slice()[0].announced.len(), 200);
        assert_eq!(b.as_slice()[1].attrs.as_path, vec![AsPathSegment::Sequence(vec![4])]);
        b.recycle();
        assert!(b.is_empty());
        assert!(
            b.slots[0].announced.capacity() <= KEEP_PREFIXES,
            "a large slot gives memory back"
        );
        // The next update lands in the first slot, with nothing of the old.
        let Some((Message::Update(u), _)) = decode(&wires[1], &ctx).unwrap() else {
            panic!()
        };
        let p = b.parse_push(&u, &ctx).unwrap().clone();
        assert_eq!(p, u.parse(&ctx).unwrap());
        b.recycle();
        assert_eq!(b.slots.len(), 2, "a batch of half its slots keeps them");
        for _ in 0..100 {
            b.push(p.clone());
        }
        b.recycle();
        assert_eq!(b.slots.len(), 100);
        b.push(p.clone());
        b.recycle();
        assert_eq!(b.slots.len(), KEEP_IDLE, "a small batch gives most slots back");
        // A malformed UPDATE leaves the batch as it was.
        let mut bad = wires[1].clone();
        let n = bad.len();
        bad[n - 4] = 33; // prefix length past 32
        let Some((Message::Update(u), _)) = decode(&bad, &ctx).unwrap() else {
            panic!()
        };
        assert!(b.parse_push(&u, &ctx).is_err());
        assert!(b.is_empty());
    }
}
