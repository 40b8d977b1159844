//! MRT files on disk: plain, gzip or bzip2 (told apart by their first
//! bytes, as RouteViews and RIPE RIS name them inconsistently), read one
//! record at a time so that a full-table dump never sits in memory whole.
//!
//! Only regular files are read (a FIFO or a device could block or never
//! end), and a dump is read for at most `MAX_BYTES` of decompressed input
//! and `MAX_TIME`: a sparse file of holes, a file that keeps growing or a
//! decompression bomb ends with an error instead of holding the reader.

use petrel_bgp_wire::mrt::{self, MrtError, Record};
use std::io::{BufReader, Read};
use std::path::Path;
use std::time::{Duration, Instant};

/// Decompressed bytes one MRT file may hold: RIPE RIS's full dumps of every
/// peer are a few GiB.
pub const MAX_BYTES: u64 = 64 << 30;
/// The longest one MRT file may take to read.
pub const MAX_TIME: Duration = Duration::from_secs(3600);

pub struct MrtFile {
    r: Box<dyn Read + Send>,
    buf: Vec<u8>,
    /// Bytes of decompressed input consumed, for error messages.
    pub offset: u64,
    name: String,
    started: Instant,
    records: u64,
    max_bytes: u64,
    max_time: Duration,
}

impl MrtFile {
    pub fn open(path: &Path) -> Result<MrtFile, String> {
        MrtFile::open_bounded(path, MAX_BYTES, MAX_TIME)
    }

    pub fn open_bounded(path: &Path, max_bytes: u64, max_time: Duration) -> Result<MrtFile, String> {
        let name = path.display().to_string();
        let (file, _) = crate::sources::open_regular(path, u64::MAX).map_err(|e| format!("{name}: {e}"))?;
        let mut f = BufReader::with_capacity(1 << 20, file);
        let mut magic = [0u8; 3];
        let n = {
            use std::io::BufRead;
            let b = f.fill_buf().map_err(|e| format!("{name}: {e}"))?;
            let n = b.len().min(3);
            magic[..n].copy_from_slice(&b[..n]);
            n
        };
        let r: Box<dyn Read + Send> = if n >= 2 && magic[..2] == [0x1f, 0x8b] {
            Box::new(BufReader::with_capacity(1 << 20, flate2::read::MultiGzDecoder::new(f)))
        } else if n == 3 && &magic == b"BZh" {
            Box::new(BufReader::with_capacity(1 << 20, bzip2::read::MultiBzDecoder::new(f)))
        } else {
            Box::new(f)
        };
        Ok(MrtFile {
            r,
            buf: Vec::new(),
            offset: 0,
            name,
            started: Instant::now(),
            records: 0,
            max_bytes,
            max_time,
        })
    }

    /// The next record; `Ok(None)` at a clean end of file. A truncated last
    /// record (a dump cut short) is an error that names the offset.
    pub fn next_record(&mut self) -> Result<Option<Record>, String> {
        if self.offset > self.max_bytes {
            return Err(self.error(&format!(
                "more than {} MiB of MRT data; reading stops",
                self.max_bytes >> 20
            )));
        }
        self.records += 1;
        if self.records.is_multiple_of(4096) && self.started.elapsed() > self.max_time {
            return Err(self.error(&format!(
                "still reading after {} s; reading stops",
                self.max_time.as_secs()
            )));
        }
        self.buf.resize(12, 0);
        match read_full(&mut self.r, &mut self.buf[..12]) {
            Ok(0) => return Ok(None),
            Ok(12) => {}
            Ok(_) => return Err(self.error("truncated record header")),
            Err(e) => return Err(self.error(&e.to_string())),
        }
        let len = match mrt::record_len(&self.buf) {
            Some(Ok(n)) => n,
            Some(Err(MrtError(e))) => return Err(self.error(&e)),
            None => unreachable!("12 bytes hold a header"),
        };
        self.buf.resize(len, 0);
        match read_full(&mut self.r, &mut self.buf[12..]) {
            Ok(n) if n == len - 12 => {}
            Ok(_) => return Err(self.error("truncated record")),
            Err(e) => return Err(self.error(&e.to_string())),
        }
        let rec = mrt::parse_record(&self.buf).map_err(|e| self.error(&e.0))?;
        self.offset += len as u64;
        Ok(Some(rec))
    }

    fn error(&self, what: &str) -> String {
        format!("{}: MRT record at byte {}: {what}", self.name, self.offset)
    }
}

/// What a dump holds, read through as the MRT reader reads it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    pub records: u64,
    pub routes: u64,
    pub peers: usize,
    /// Routes whose attributes could not be used (RFC 7606 would withdraw
    /// them); they are skipped.
    pub unusable: u64,
}

/// Read a whole dump as `petrel check` does: the first error ends it, with
/// the same words the MRT reader would log.
pub fn scan(path: &Path) -> Result<Scan, String> {
    let mut f = MrtFile::open(path)?;
    let mut s = Scan::default();
    let mut peers = std::collections::HashSet::new();
    while let Some(rec) = f.next_record()? {
        s.records += 1;
        match rec {
            Record::PeerIndex { peers: p, .. } => s.peers = s.peers.max(p.len()),
            Record::Rib { entries, .. } => {
                for e in entries {
                    match e.attrs {
                        Ok(_) => s.routes += 1,
                        Err(_) => s.unusable += 1,
                    }
                }
            }
            Record::TableDump { peer, entry, .. } => {
                peers.insert(peer.address);
                match entry.attrs {
                    Ok(_) => s.routes += 1,
                    Err(_) => s.unusable += 1,
                }
            }
            Record::Update { peer, update, .. } => {
                peers.insert(peer);
                s.routes += update.announced.len() as u64;
            }
            Record::StateChange { .. } | Record::Other { .. } => {}
        }
    }
    s.peers = s.peers.max(peers.len());
    Ok(s)
}

/// Read until `buf` is full or the input ends; returns bytes read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endless_or_huge_input_is_bounded() {
        let dir = std::env::temp_dir().join(format!("petrel-mrt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A sparse file: zeros read as (meaningless) MRT records for ever.
        let sparse = dir.join("sparse.mrt");
        let f = std::fs::File::create(&sparse).unwrap();
        f.set_len(8 << 20).unwrap();
        let mut m = MrtFile::open_bounded(&sparse, 1 << 20, MAX_TIME).unwrap();
        let e = loop {
            match m.next_record() {
                Ok(Some(_)) => {}
                Ok(None) => panic!("read to the end"),
                Err(e) => break e,
            }
        };
        assert!(e.contains("more than 1 MiB of MRT data; reading stops"), "{e}");
        let mut m = MrtFile::open_bounded(&sparse, u64::MAX, Duration::ZERO).unwrap();
        let e = loop {
            match m.next_record() {
                Ok(Some(_)) => {}
                Ok(None) => panic!("read to the end"),
                Err(e) => break e,
            }
        };
        assert!(e.contains("still reading after 0 s"), "{e}");
        // Not a regular file: refused before anything is read.
        let e = MrtFile::open(Path::new("/dev/zero")).err().unwrap();
        assert!(e.ends_with("is a device, not a regular file"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
