//! NSEC records for compact denial of existence (RFC 9824): every
//! negative answer is an NSEC owned by the name asked for, whose next name
//! is its immediate successor in canonical order (`\000.<name>`), so that
//! it covers nothing but that one name. Its type bitmap says what exists
//! there (NODATA) or, with the pseudo-type NXNAME, that nothing does
//! (NXDOMAIN).

use crate::rtype;

/// Largest type bitmap we write: windows 0 and, for CAA and the like, 1.
pub const MAX_BITMAP: usize = 2 * 34;

/// The type bitmap of `types` (RFC 4034 §4.1.2) into `out`; returns its
/// length. Types may come in any order and repeat; types past window 1
/// (beyond 511) are left out.
pub fn type_bitmap(types: &[u16], out: &mut [u8; MAX_BITMAP]) -> usize {
    let mut win = [[0u8; 32]; 2];
    let mut used = [0usize; 2];
    for &t in types {
        let w = (t >> 8) as usize;
        if w >= 2 {
            continue;
        }
        let lo = (t & 0xff) as usize;
        win[w][lo / 8] |= 0x80 >> (lo % 8);
        used[w] = used[w].max(lo / 8 + 1);
    }
    let mut n = 0;
    for w in 0..2 {
        if used[w] == 0 {
            continue;
        }
        out[n] = w as u8;
        out[n + 1] = used[w] as u8;
        out[n + 2..n + 2 + used[w]].copy_from_slice(&win[w][..used[w]]);
        n += 2 + used[w];
    }
    n
}

/// The next owner name of a compact NSEC at `owner` (lower-case wire):
/// `\000.<owner>`, or the owner itself when that would be longer than a
/// name may be (RFC 9824 §3 leaves the successor to the signer; an NSEC
/// whose next name is its owner covers no other name either).
pub fn next_name(owner: &[u8], out: &mut [u8; 255]) -> usize {
    if owner.len() + 2 <= 255 {
        out[0] = 1;
        out[1] = 0;
        out[2..2 + owner.len()].copy_from_slice(owner);
        owner.len() + 2
    } else {
        out[..owner.len()].copy_from_slice(owner);
        owner.len()
    }
}

/// The RDATA of a compact NSEC at `owner` with `types` (RRSIG and NSEC are
/// added; pass [`rtype::NXNAME`] alone for a name that does not exist).
/// Returns its length in `out`.
pub fn compact_rdata(owner: &[u8], types: &[u16], out: &mut [u8; 255 + MAX_BITMAP]) -> usize {
    let mut next = [0u8; 255];
    let n = next_name(owner, &mut next);
    out[..n].copy_from_slice(&next[..n]);
    let mut all = [0u16; 64];
    let k = types.len().min(all.len() - 2);
    all[..k].copy_from_slice(&types[..k]);
    all[k] = rtype::RRSIG;
    all[k + 1] = rtype::NSEC;
    let mut bm = [0u8; MAX_BITMAP];
    let b = type_bitmap(&all[..k + 2], &mut bm);
    out[n..n + b].copy_from_slice(&bm[..b]);
    n + b
}
