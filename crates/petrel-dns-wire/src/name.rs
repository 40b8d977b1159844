//! Uncompressed wire-format domain names: validation, case folding, text.
//!
//! A "wire name" here is a sequence of length-prefixed labels ending in the
//! root label, with no compression pointers.

use std::fmt::Write;

pub const MAX_NAME_LEN: usize = 255;

/// Length of the valid uncompressed name at the start of `buf`, or `None`.
pub fn wire_len(buf: &[u8]) -> Option<usize> {
    let mut pos = 0;
    loop {
        let len = *buf.get(pos)? as usize;
        if len == 0 {
            pos += 1;
            return if pos <= MAX_NAME_LEN { Some(pos) } else { None };
        }
        if len > 63 {
            return None;
        }
        pos += 1 + len;
        if pos >= MAX_NAME_LEN {
            return None;
        }
    }
}

/// Copy `name` into `out` with ASCII letters folded to lower case.
pub fn lowercase_into(name: &[u8], out: &mut [u8; MAX_NAME_LEN]) -> usize {
    let n = name.len().min(MAX_NAME_LEN);
    for (o, i) in out[..n].iter_mut().zip(&name[..n]) {
        *o = i.to_ascii_lowercase();
    }
    n
}

pub fn to_lowercase(name: &[u8]) -> Vec<u8> {
    name.iter().map(|b| b.to_ascii_lowercase()).collect()
}

/// Byte offsets of each label start, the root label excluded.
/// Returns how many were written to `out`.
pub fn label_starts(name: &[u8], out: &mut [u8; 128]) -> usize {
    let mut pos = 0;
    let mut n = 0;
    while pos < name.len() && name[pos] != 0 {
        out[n] = pos as u8;
        n += 1;
        pos += 1 + name[pos] as usize;
    }
    n
}

/// The parent name (drop the first label); `None` for the root.
pub fn parent(name: &[u8]) -> Option<&[u8]> {
    let first = *name.first()? as usize;
    if first == 0 {
        None
    } else {
        name.get(1 + first..)
    }
}

/// Number of labels, root excluded.
pub fn label_count(name: &[u8]) -> usize {
    let mut buf = [0u8; 128];
    label_starts(name, &mut buf)
}

/// Whether `name` equals or lies below `zone` (both lower case).
pub fn is_subdomain(name: &[u8], zone: &[u8]) -> bool {
    let mut n = name;
    loop {
        if n == zone {
            return true;
        }
        match parent(n) {
            Some(p) => n = p,
            None => return false,
        }
    }
}

/// Presentation form with a trailing dot; non-printable bytes escaped as `\DDD`.
pub fn to_text(name: &[u8]) -> String {
    let mut s = String::new();
    let mut pos = 0;
    while pos < name.len() {
        let len = name[pos] as usize;
        if len == 0 {
            break;
        }
        for &b in name.get(pos + 1..pos + 1 + len).unwrap_or(&[]) {
            match b {
                b'.' | b'\\' => {
                    s.push('\\');
                    s.push(b as char);
                }
                0x21..=0x7e => s.push(b as char),
                _ => {
                    let _ = write!(s, "\\{b:03}");
                }
            }
        }
        s.push('.');
        pos += 1 + len;
    }
    if s.is_empty() {
        s.push('.');
    }
    s
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameTextError(pub String);

impl std::fmt::Display for NameTextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parse an absolute name in presentation form (`www.example.net.`; the final
/// dot is optional here because config files are written by people).
/// Supports `\.` and `\DDD` escapes.
pub fn from_text(text: &str) -> Result<Vec<u8>, NameTextError> {
    let t = text.strip_suffix('.').unwrap_or(text);
    let mut out = Vec::with_capacity(t.len() + 2);
    if t.is_empty() {
        out.push(0);
        return Ok(out);
    }
    let bytes = t.as_bytes();
    let mut label: Vec<u8> = Vec::new();
    let mut i = 0;
    let flush = |label: &mut Vec<u8>, out: &mut Vec<u8>| -> Result<(), NameTextError> {
        if label.is_empty() {
            return Err(NameTextError(format!("`{text}` has an empty label")));
        }
        if label.len() > 63 {
            return Err(NameTextError(format!("`{text}` has a label longer than 63 octets")));
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label);
        label.clear();
        Ok(())
    };
    while i < bytes.len() {
        match bytes[i] {
            b'.' => {
                flush(&mut label, &mut out)?;
                i += 1;
            }
            b'\\' => {
                let rest = &bytes[i + 1..];
                if rest.len() >= 3 && rest[..3].iter().all(u8::is_ascii_digit) {
                    let v: u32 = std::str::from_utf8(&rest[..3]).unwrap().parse().unwrap();
                    if v > 255 {
                        return Err(NameTextError(format!("`{text}` has a bad \\DDD escape")));
                    }
                    label.push(v as u8);
                    i += 4;
                } else if let Some(&c) = rest.first() {
                    label.push(c);
                    i += 2;
                } else {
                    return Err(NameTextError(format!("`{text}` ends in a backslash")));
                }
            }
            c => {
                label.push(c);
                i += 1;
            }
        }
    }
    flush(&mut label, &mut out)?;
    out.push(0);
    if out.len() > MAX_NAME_LEN {
        return Err(NameTextError(format!("`{text}` is longer than 255 octets")));
    }
    Ok(out)
}

/// Skip a possibly compressed name in a message at `pos`; the offset after
/// it. None: malformed, or past the end.
pub fn skip(b: &[u8], mut pos: usize) -> Option<usize> {
    let mut total = 0usize;
    loop {
        let len = *b.get(pos)? as usize;
        match len {
            0 => return Some(pos + 1),
            1..=63 => {
                pos += 1 + len;
                total += 1 + len;
                if total > MAX_NAME_LEN {
                    return None;
                }
            }
            _ if len & 0xC0 == 0xC0 => {
                b.get(pos + 1)?;
                return Some(pos + 2);
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip() {
        let w = from_text("WWW.Example.net.").unwrap();
        assert_eq!(w, b"\x03WWW\x07Example\x03net\x00");
        assert_eq!(to_text(&w), "WWW.Example.net.");
        assert_eq!(wire_len(&w), Some(w.len()));
        assert_eq!(from_text(".").unwrap(), b"\x00");
        assert_eq!(to_text(b"\x00"), ".");
        assert!(from_text("a..b").is_err());
        assert_eq!(from_text("a\\.b.c").unwrap(), b"\x03a.b\x01c\x00");
        assert_eq!(to_text(b"\x03a.b\x01c\x00"), "a\\.b.c.");
    }

    #[test]
    fn subdomains() {
        let z = from_text("example.net").unwrap();
        assert!(is_subdomain(&from_text("a.b.example.net").unwrap(), &z));
        assert!(is_subdomain(&z, &z));
        assert!(!is_subdomain(&from_text("example.org").unwrap(), &z));
        assert!(!is_subdomain(&from_text("xexample.net").unwrap(), &z));
        assert_eq!(label_count(&z), 2);
    }

    #[test]
    fn bad_wire_names() {
        assert_eq!(wire_len(b"\x40aaaa"), None);
        assert_eq!(wire_len(b"\x03abc"), None);
        let mut long = Vec::new();
        for _ in 0..5 {
            long.push(63);
            long.extend_from_slice(&[b'a'; 63]);
        }
        long.push(0);
        assert_eq!(wire_len(&long), None);
    }
}
