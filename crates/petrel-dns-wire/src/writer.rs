//! Building a reply into a caller-owned buffer, with name compression.

use crate::consts::{rtype, HEADER_LEN};

/// The message would exceed the size limit; the caller decides whether that
/// means TC=1 (answer/authority) or just fewer additional records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Answer = 1,
    Authority = 2,
    Additional = 3,
}

const MAX_COMP: usize = 48;

/// Writes a DNS message front to back. Every write checks against `limit`;
/// a failed write leaves the message as it was before it.
pub struct MessageWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
    limit: usize,
    counts: [u16; 4],
    // Offsets of label starts already in the message, for compression.
    comp: [u16; MAX_COMP],
    ncomp: usize,
    // Length of the question name at offset 12: a later write of the same
    // bytes (the usual answer owner) becomes a pointer without a search.
    question_len: usize,
    // Where the OPT record starts, once written.
    last_opt: Option<usize>,
}

/// A point to return to (see [`MessageWriter::rollback`]).
#[derive(Clone, Copy, Debug)]
pub struct Mark {
    pos: usize,
    counts: [u16; 4],
    ncomp: usize,
}

impl<'a> MessageWriter<'a> {
    /// Start a message; `limit` is capped at the buffer length.
    pub fn new(buf: &'a mut [u8], limit: usize) -> Self {
        let limit = limit.min(buf.len());
        MessageWriter {
            buf,
            pos: HEADER_LEN,
            limit,
            counts: [0; 4],
            comp: [0; MAX_COMP],
            ncomp: 0,
            question_len: 0,
            last_opt: None,
        }
    }

    pub fn len(&self) -> usize {
        self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos == HEADER_LEN
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Lower the limit, e.g. to keep room for the OPT record.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.min(self.buf.len());
    }

    pub fn mark(&self) -> Mark {
        Mark {
            pos: self.pos,
            counts: self.counts,
            ncomp: self.ncomp,
        }
    }

    pub fn rollback(&mut self, m: Mark) {
        if self.last_opt.is_some_and(|o| o >= m.pos) {
            self.last_opt = None;
        }
        self.pos = m.pos;
        self.counts = m.counts;
        self.ncomp = m.ncomp;
    }

    pub fn count(&self, section: Section) -> u16 {
        self.counts[section as usize]
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), Full> {
        let end = self.pos + bytes.len();
        if end > self.limit {
            return Err(Full);
        }
        self.buf[self.pos..end].copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }

    fn put16(&mut self, v: u16) -> Result<(), Full> {
        self.put(&v.to_be_bytes())
    }

    fn put32(&mut self, v: u32) -> Result<(), Full> {
        self.put(&v.to_be_bytes())
    }

    /// Write the question. Must come first; the name is kept as sent.
    pub fn question(&mut self, name: &[u8], qtype: u16, qclass: u16) -> Result<(), Full> {
        debug_assert_eq!(self.pos, HEADER_LEN);
        let m = self.mark();
        let r = self
            .name(name)
            .and_then(|_| self.put16(qtype))
            .and_then(|_| self.put16(qclass));
        if r.is_err() {
            self.rollback(m);
            return r;
        }
        self.counts[0] = 1;
        Ok(())
    }

    /// Write a name, compressing against names already in the message.
    pub fn name(&mut self, name: &[u8]) -> Result<(), Full> {
        if name.len() > 1 && name.len() == self.question_len && name == &self.buf[HEADER_LEN..HEADER_LEN + name.len()] {
            return self.put16(0xC000 | HEADER_LEN as u16);
        }
        let mut pos = 0;
        while pos < name.len() && name[pos] != 0 {
            if let Some(ptr) = self.find_suffix(&name[pos..]) {
                self.put(&name[..pos])?;
                self.remember_labels(name, pos);
                return self.put16(0xC000 | ptr);
            }
            pos += 1 + name[pos] as usize;
        }
        let start = self.pos;
        self.put(name)?;
        self.remember_at(start, name);
        Ok(())
    }

    // Record label starts of a name just written at `start` (no pointer).
    fn remember_at(&mut self, start: usize, name: &[u8]) {
        let mut pos = 0;
        while pos < name.len() && name[pos] != 0 {
            self.push_comp(start + pos);
            pos += 1 + name[pos] as usize;
        }
    }

    // Labels `name[..upto]` were just written ending right before a pointer.
    fn remember_labels(&mut self, name: &[u8], upto: usize) {
        let start = self.pos - upto;
        let mut pos = 0;
        while pos < upto {
            self.push_comp(start + pos);
            pos += 1 + name[pos] as usize;
        }
    }

    fn push_comp(&mut self, off: usize) {
        if off < 0x3FFF && self.ncomp < MAX_COMP {
            self.comp[self.ncomp] = off as u16;
            self.ncomp += 1;
        }
    }

    fn find_suffix(&self, suffix: &[u8]) -> Option<u16> {
        self.comp[..self.ncomp]
            .iter()
            .copied()
            .find(|&off| self.equals_at(off as usize, suffix))
    }

    // Compare the (possibly compressed) name at `off` in the message with an
    // uncompressed name, ignoring ASCII case.
    fn equals_at(&self, mut off: usize, name: &[u8]) -> bool {
        let mut i = 0;
        let mut hops = 0;
        loop {
            let Some(&len) = self.buf.get(off) else {
                return false;
            };
            if len & 0xC0 == 0xC0 {
                hops += 1;
                if hops > 64 {
                    return false;
                }
                let lo = self.buf.get(off + 1).copied().unwrap_or(0);
                off = (((len & 0x3F) as usize) << 8) | lo as usize;
                continue;
            }
            let Some(&nlen) = name.get(i) else {
                return false;
            };
            if nlen != len {
                return false;
            }
            if len == 0 {
                return true;
            }
            let l = len as usize;
            let (Some(a), Some(b)) = (self.buf.get(off + 1..off + 1 + l), name.get(i + 1..i + 1 + l)) else {
                return false;
            };
            if !a.eq_ignore_ascii_case(b) {
                return false;
            }
            off += 1 + l;
            i += 1 + l;
        }
    }

    /// Start a record; write rdata with the `rdata_*` methods, then call
    /// [`MessageWriter::end_record`]. On `Err`, roll back to a mark.
    pub fn begin_record(&mut self, owner: &[u8], rtype: u16, class: u16, ttl: u32) -> Result<usize, Full> {
        self.name(owner)?;
        self.put16(rtype)?;
        self.put16(class)?;
        self.put32(ttl)?;
        let at = self.pos;
        self.put16(0)?;
        Ok(at)
    }

    pub fn end_record(&mut self, section: Section, rdlen_at: usize) {
        let rdlen = (self.pos - rdlen_at - 2) as u16;
        self.buf[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
        self.counts[section as usize] += 1;
    }

    pub fn rdata_bytes(&mut self, b: &[u8]) -> Result<(), Full> {
        self.put(b)
    }

    pub fn rdata_name(&mut self, name: &[u8]) -> Result<(), Full> {
        self.name(name)
    }

    /// A whole record whose rdata holds no compressible names.
    pub fn record(
        &mut self,
        section: Section,
        owner: &[u8],
        rtype: u16,
        class: u16,
        ttl: u32,
        rdata: &[u8],
    ) -> Result<(), Full> {
        let m = self.mark();
        let r = self.begin_record(owner, rtype, class, ttl).and_then(|at| {
            self.put(rdata)?;
            Ok(at)
        });
        match r {
            Ok(at) => {
                self.end_record(section, at);
                Ok(())
            }
            Err(e) => {
                self.rollback(m);
                Err(e)
            }
        }
    }

    /// Size of an OPT record with an optional ECS option of `addr_len` bytes.
    pub fn opt_size(ecs_addr_len: Option<usize>) -> usize {
        11 + ecs_addr_len.map_or(0, |l| 8 + l)
    }

    /// The OPT pseudo-record (RFC 6891) with an optional ECS option
    /// (family, source, scope, address bytes already truncated to source).
    pub fn opt(&mut self, udp_size: u16, ext_rcode: u8, ecs: Option<(u16, u8, u8, &[u8])>) -> Result<(), Full> {
        let m = self.mark();
        self.last_opt = Some(self.pos);
        let r = (|| {
            self.put(&[0])?;
            self.put16(rtype::OPT)?;
            self.put16(udp_size)?;
            self.put(&[ext_rcode, 0, 0, 0])?;
            match ecs {
                None => self.put16(0),
                Some((family, source, scope, addr)) => {
                    self.put16(8 + addr.len() as u16)?;
                    self.put16(crate::consts::edns_option::CLIENT_SUBNET)?;
                    self.put16(4 + addr.len() as u16)?;
                    self.put16(family)?;
                    self.put(&[source, scope])?;
                    self.put(addr)
                }
            }
        })();
        match r {
            Ok(()) => {
                self.counts[Section::Additional as usize] += 1;
                Ok(())
            }
            Err(e) => {
                self.rollback(m);
                self.last_opt = None;
                Err(e)
            }
        }
    }

    /// Set the flags of the OPT record just written (DO, CO: RFC 3225
    /// §3 has the DO bit copied from the query).
    pub fn opt_flags(&mut self, flags: u16) {
        if let Some(at) = self.last_opt {
            self.buf[at + 7..at + 9].copy_from_slice(&flags.to_be_bytes());
        }
    }

    /// Append an option to the OPT record just written (the last record
    /// of the message).
    pub fn opt_option(&mut self, code: u16, data: &[u8]) -> Result<(), Full> {
        // The OPT's RDLENGTH: the record is 11 bytes plus its options, and
        // it ends the message.
        let opt_start = self.last_opt.ok_or(Full)?;
        let rdlen_at = opt_start + 9;
        let m = self.mark();
        let r = (|| {
            self.put16(code)?;
            self.put16(data.len() as u16)?;
            self.put(data)
        })();
        if let Err(e) = r {
            self.rollback(m);
            return Err(e);
        }
        let rdlen = (self.pos - opt_start - 11) as u16;
        self.buf[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
        Ok(())
    }

    /// Write the header and return the message length.
    pub fn finish(self, id: u16, flags: u16) -> usize {
        self.buf[0..2].copy_from_slice(&id.to_be_bytes());
        self.buf[2..4].copy_from_slice(&flags.to_be_bytes());
        for (i, c) in self.counts.iter().enumerate() {
            self.buf[4 + 2 * i..6 + 2 * i].copy_from_slice(&c.to_be_bytes());
        }
        self.pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Message;
    use hickory_proto::serialize::binary::BinDecodable;

    #[test]
    fn compresses_and_decodes_with_an_independent_codec() {
        let mut buf = [0u8; 512];
        let mut w = MessageWriter::new(&mut buf, 512);
        let q = b"\x03WwW\x07example\x03net\x00";
        w.question(q, 5, 1).unwrap();
        let at = w.begin_record(b"\x03www\x07example\x03net\x00", 5, 1, 60).unwrap();
        w.rdata_name(b"\x03ams\x03pop\x07example\x03net\x00").unwrap();
        w.end_record(Section::Answer, at);
        w.record(
            Section::Answer,
            b"\x03ams\x03pop\x07example\x03net\x00",
            1,
            1,
            60,
            &[192, 0, 2, 1],
        )
        .unwrap();
        w.opt(1232, 0, Some((1, 24, 16, &[198, 51, 100]))).unwrap();
        let len = w.finish(7, 0x8400);
        // question 12+21+4; CNAME owner is a pointer (2), rdata "ams.pop" + ptr.
        assert!(len < 100, "{len}");
        let m = Message::from_bytes(&buf[..len]).unwrap();
        assert_eq!(m.answers.len(), 2);
        assert_eq!(m.answers[0].name.to_string(), "WwW.example.net.");
        assert_eq!(m.answers[1].name.to_string(), "ams.pop.example.net.");
        let edns = m.edns.unwrap();
        assert_eq!(edns.max_payload(), 1232);
    }

    #[test]
    fn limit_is_respected_and_rolls_back() {
        let mut buf = [0u8; 512];
        let mut w = MessageWriter::new(&mut buf, 40);
        w.question(b"\x07example\x03net\x00", 1, 1).unwrap();
        let before = w.len();
        assert_eq!(
            w.record(Section::Answer, b"\x07example\x03net\x00", 16, 1, 1, &[0; 30]),
            Err(Full)
        );
        assert_eq!(w.len(), before);
        assert_eq!(w.count(Section::Answer), 0);
    }
}
