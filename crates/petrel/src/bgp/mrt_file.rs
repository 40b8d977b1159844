//! MRT files on disk: plain, gzip or bzip2 (told apart by their first
//! bytes, as RouteViews and RIPE RIS name them inconsistently), read one
//! record at a time so that a full-table dump never sits in memory whole.

use petrel_bgp_wire::mrt::{self, MrtError, Record};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

pub struct MrtFile {
    r: Box<dyn Read + Send>,
    buf: Vec<u8>,
    /// Bytes of decompressed input consumed, for error messages.
    pub offset: u64,
    name: String,
}

impl MrtFile {
    pub fn open(path: &Path) -> Result<MrtFile, String> {
        let name = path.display().to_string();
        let mut f = BufReader::with_capacity(1 << 20, File::open(path).map_err(|e| format!("{name}: {e}"))?);
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
        })
    }

    /// The next record; `Ok(None)` at a clean end of file. A truncated last
    /// record (a dump cut short) is an error that names the offset.
    pub fn next_record(&mut self) -> Result<Option<Record>, String> {
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
