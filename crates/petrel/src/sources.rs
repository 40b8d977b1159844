//! Reading what a config names: the config itself, zone files, CIDR maps,
//! the GeoIP database, MRT dumps (checked here, read by the MRT reader), and
//! the state file of operator overrides. Building from them is the decision
//! core's job.
//!
//! Every file is read the same way: regular files only (a FIFO, a device or
//! a directory would block a reload or never end), and no larger than the
//! configured cap, so that `check` and `serve` reject the same files with
//! the same words.

use petrel_config::{Config, ServerConf};
use petrel_director::{build, needs, Built, Need, Overrides, Sources};
use petrel_mapping::{BgpData, GeoTable};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

/// The config is read before it can say how large files may be.
const MAX_CONFIG_SIZE: u64 = 16 << 20;

/// Open a file for reading without blocking on it (O_NONBLOCK: opening a
/// FIFO waits for a writer otherwise) and insist that it is a regular file
/// of at most `cap` bytes. Returns the file and its size.
pub fn open_regular(path: &Path, cap: u64) -> Result<(File, u64), String> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("cannot read: {e}"))?;
    let meta = f.metadata().map_err(|e| format!("cannot read: {e}"))?;
    let ft = meta.file_type();
    if !ft.is_file() {
        let what = if ft.is_dir() {
            "a directory"
        } else if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_char_device() || ft.is_block_device() {
            "a device"
        } else if ft.is_socket() {
            "a socket"
        } else {
            "not a plain file"
        };
        return Err(format!("is {what}, not a regular file"));
    }
    if meta.len() > cap {
        return Err(too_big(meta.len(), cap));
    }
    Ok((f, meta.len()))
}

fn too_big(len: u64, cap: u64) -> String {
    format!(
        "is {} MiB, larger than the limit of {} MiB (server.max_file_size_mb)",
        len.div_ceil(1 << 20),
        cap >> 20
    )
}

/// The bytes of a regular file of at most `cap` bytes. A file that grows
/// past the cap while it is read is refused too.
pub fn read_bytes(path: &Path, cap: u64) -> Result<Vec<u8>, String> {
    let (f, len) = open_regular(path, cap)?;
    let mut buf = Vec::with_capacity(len as usize);
    f.take(cap + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read: {e}"))?;
    if buf.len() as u64 > cap {
        return Err(too_big(buf.len() as u64, cap));
    }
    Ok(buf)
}

/// A text file, as `read_bytes`, that must be UTF-8.
pub fn read_text(path: &Path, cap: u64) -> Result<String, String> {
    String::from_utf8(read_bytes(path, cap)?).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        format!("is not UTF-8 text (byte {at})")
    })
}

/// Read and validate a config file.
pub fn load_config(path: &Path) -> Result<Config, Vec<String>> {
    let text = read_text(path, MAX_CONFIG_SIZE).map_err(|e| vec![format!("{}: {e}", path.display())])?;
    petrel_config::parse(path, &text).map_err(|errs| errs.iter().map(|e| e.to_string()).collect())
}

/// Read every file a config names.
pub fn read(config: &Config) -> Sources {
    let cap = config.server.max_file_size;
    let mut src = Sources {
        // Signatures made for this generation start now.
        now: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32),
        ..Sources::default()
    };
    for need in needs(config) {
        match need {
            Need::Text(p) => {
                let r = read_text(&p, cap);
                src.texts.insert(p, r);
            }
            Need::Geo(p) => src.geo = Some(read_geo(&p, cap).map(Arc::new)),
            Need::Mrt(p) => {
                // The MRT reader streams dumps of any size; here only what
                // it will open is checked.
                let r = open_regular(&p, u64::MAX).map(drop);
                src.mrt.insert(p, r);
            }
        }
    }
    src
}

fn read_geo(path: &Path, cap: u64) -> Result<GeoTable, String> {
    let bytes = read_bytes(path, cap)?;
    let reader = maxminddb::Reader::from_source(bytes).map_err(|e| e.to_string())?;
    GeoTable::from_reader(&reader).map_err(|e| e.to_string())
}

/// Read a config and every file it names, and build it (with the routing
/// views there are, if any).
pub fn load(path: &Path, bgp: Option<Arc<BgpData>>) -> Result<Built, Vec<String>> {
    let config = load_config(path)?;
    let src = read(&config);
    let built = build(config, &src, bgp).map_err(|errs| errs.into_iter().map(|e| e.to_string()).collect());
    drop(src);
    crate::memory::give_back();
    built
}

/// The overrides the config's state file records (none without one), and
/// a warning when the file could not be used.
pub fn saved_overrides(server: &ServerConf) -> (Overrides, Option<String>) {
    match &server.state_file {
        Some(f) => read_overrides(f, server.max_file_size),
        None => (Overrides::default(), None),
    }
}

/// The admin token, if the config names a token file, and a warning when
/// others than its owner may read that file.
pub fn admin_token(server: &ServerConf) -> Result<(Option<String>, Option<String>), String> {
    let Some(f) = &server.admin_token_file else {
        return Ok((None, None));
    };
    let fail = |e: String| format!("{}: admin token file {e}", f.display());
    let t = read_text(f, 4096).map_err(fail)?;
    let t = t.trim();
    if t.len() < 16 {
        return Err(fail("holds fewer than 16 characters".into()));
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(f)
        .map_err(|e| fail(e.to_string()))?
        .permissions()
        .mode();
    let warning = (mode & 0o044 != 0).then(|| {
        format!(
            "{}: the admin token file may be read by other users (mode {:o}); chmod 600 it",
            f.display(),
            mode & 0o777
        )
    });
    Ok((Some(t.to_string()), warning))
}

/// The overrides a state file records. A missing file means none yet. A
/// file that cannot be used (unreadable, not a regular file, too large,
/// empty, corrupt) must not keep the server from starting: the overrides
/// are lost and the second value says so, for a warning.
pub fn read_overrides(path: &Path, cap: u64) -> (Overrides, Option<String>) {
    let lost = |why: String| {
        let w = format!(
            "{}: state file {why}; starting without the saved drains and forces",
            path.display()
        );
        (Overrides::default(), Some(w))
    };
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (Overrides::default(), None),
        _ => {}
    }
    let text = match read_text(path, cap) {
        Ok(t) => t,
        Err(e) => return lost(e),
    };
    if text.trim().is_empty() {
        return lost("is empty".into());
    }
    match Overrides::from_text(&text) {
        Ok(o) => (o, None),
        Err(e) => lost(format!("is corrupt ({e})")),
    }
}

/// Write the state file so that a crash or a hostile directory never leaves
/// half a file or writes elsewhere: a new temporary file (O_EXCL and
/// O_NOFOLLOW, so a symlink placed at its name is not followed), synced,
/// renamed over the old one, and the directory synced so the rename itself
/// survives a power loss.
pub fn write_overrides(path: &Path, o: &Overrides) -> Result<(), String> {
    let fail = |what: &str, e: std::io::Error| format!("{}: cannot write the state file ({what}: {e})", path.display());
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| format!("{}: not a file name", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    // A leftover of a crashed write (or anything placed there) is removed,
    // never written through.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(fail("remove stale temporary file", e)),
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(|e| fail("create temporary file", e))?;
    let written = f
        .write_all(o.to_text().as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| fail("write temporary file", e))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| fail("rename", e)));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| fail("sync directory", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use petrel_director::OverrideAction;

    struct Dir(std::path::PathBuf);
    impl Dir {
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn dir() -> Dir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("petrel-sources-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    #[test]
    fn only_regular_files_within_the_cap_are_read() {
        let d = dir();
        let fifo = d.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string; mkfifo only creates a file.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Opening a FIFO without a writer would block for ever.
        assert_eq!(read_text(&fifo, 1 << 20).unwrap_err(), "is a FIFO, not a regular file");
        assert_eq!(
            read_text(Path::new("/dev/zero"), 1 << 20).unwrap_err(),
            "is a device, not a regular file"
        );
        assert_eq!(
            read_text(d.path(), 1 << 20).unwrap_err(),
            "is a directory, not a regular file"
        );
        let big = d.path().join("big");
        std::fs::write(&big, vec![b'x'; (2 << 20) + 1]).unwrap();
        assert_eq!(
            read_text(&big, 2 << 20).unwrap_err(),
            "is 3 MiB, larger than the limit of 2 MiB (server.max_file_size_mb)"
        );
        assert_eq!(read_text(&big, 3 << 20).unwrap().len(), (2 << 20) + 1);
        std::fs::write(&big, b"ok\xff").unwrap();
        assert_eq!(read_text(&big, 1 << 20).unwrap_err(), "is not UTF-8 text (byte 2)");
    }

    #[test]
    fn an_unusable_state_file_warns_and_starts_empty() {
        let d = dir();
        let f = d.path().join("state.json");
        assert_eq!(read_overrides(&f, 1 << 20), (Overrides::default(), None));
        for (content, why) in [
            (&b""[..], "is empty"),
            (b"{\"drained\": 3", "is corrupt"),
            (b"\xff\xfe", "is not UTF-8"),
        ] {
            std::fs::write(&f, content).unwrap();
            let (o, w) = read_overrides(&f, 1 << 20);
            assert_eq!(o, Overrides::default());
            let w = w.unwrap();
            assert!(w.contains(why) && w.contains("starting without the saved"), "{w}");
        }
        std::fs::remove_file(&f).unwrap();
        std::fs::create_dir(&f).unwrap();
        assert!(read_overrides(&f, 1 << 20).1.unwrap().contains("a directory"));
    }

    #[test]
    fn the_state_file_is_written_safely() {
        let d = dir();
        let f = d.path().join("state.json");
        let o = Overrides::default().with("ams", OverrideAction::Drain);
        // A symlink planted at the temporary file's name is removed, not
        // written through.
        let victim = d.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let tmp = d.path().join(format!(".state.json.tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        write_overrides(&f, &o).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert!(!tmp.exists());
        assert_eq!(read_overrides(&f, 1 << 20), (o.clone(), None));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600);
        // A directory that cannot be written: a clear error naming the file.
        let ro = d.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o500)).unwrap();
        let e = write_overrides(&ro.join("state.json"), &o);
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o700)).unwrap();
        // Root writes anyway; everyone else gets the error.
        if unsafe { libc::geteuid() } != 0 {
            let e = e.unwrap_err();
            assert!(
                e.contains("state.json: cannot write the state file (create temporary file"),
                "{e}"
            );
        }
    }
}
