//! `petrel map --follow`: the POP states of a running server, read from
//! its admin API's stream (`GET /api/v1/pops/stream`, one JSON line per
//! generation), so that the batch map never sends a client to a POP the
//! server has found dead or an operator has drained.
//!
//! A thread keeps the stream open and reconnects when it ends (the admin
//! API closes connections after a minute, a restart closes them too); the
//! first line of each connection is the current state, so nothing is
//! missed. The map's loop picks up new states with one atomic load per
//! line.

use petrel_types::PopState;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Follower {
    version: Arc<AtomicU64>,
    latest: Arc<Mutex<Option<Arc<[PopState]>>>>,
}

impl Follower {
    /// Follow `admin`; `pops` are the local config's POP names, in order,
    /// and `initial` their states until the server says otherwise.
    pub fn start(admin: SocketAddr, pops: Vec<String>, initial: Arc<[PopState]>) -> Follower {
        let version = Arc::new(AtomicU64::new(0));
        let latest = Arc::new(Mutex::new(None));
        let (v, l) = (version.clone(), latest.clone());
        std::thread::Builder::new()
            .name("follow".into())
            .spawn(move || {
                let mut reported = false;
                loop {
                    match follow_once(admin, &pops, &initial, &v, &l) {
                        Ok(()) => reported = false,
                        Err(e) if !reported => {
                            eprintln!("petrel map: following {admin}: {e}; retrying every second");
                            reported = true;
                        }
                        Err(_) => {}
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            })
            .expect("a thread");
        Follower { version, latest }
    }

    /// Wait until the first states arrived, at most `limit`.
    pub fn wait_first(&self, limit: Duration) -> bool {
        let t0 = std::time::Instant::now();
        while self.version.load(Ordering::Acquire) == 0 {
            if t0.elapsed() > limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// New states since `seen`, if any. The common case (nothing new) is
    /// one atomic load.
    pub fn changed(&self, seen: &mut u64) -> Option<Arc<[PopState]>> {
        let v = self.version.load(Ordering::Acquire);
        if v == *seen {
            return None;
        }
        *seen = v;
        self.latest.lock().expect("follower").clone()
    }
}

/// One connection: read lines until it ends. Ok if any line was read.
fn follow_once(
    admin: SocketAddr,
    pops: &[String],
    initial: &Arc<[PopState]>,
    version: &AtomicU64,
    latest: &Mutex<Option<Arc<[PopState]>>>,
) -> Result<(), String> {
    let mut s = TcpStream::connect_timeout(&admin, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    // The server ends every connection within a minute; silence longer
    // than that is a connection that died without a word (a partition).
    s.set_read_timeout(Some(Duration::from_secs(90)))
        .map_err(|e| e.to_string())?;
    // HTTP/1.0: the body runs to the end of the connection, unchunked.
    write!(s, "GET /api/v1/pops/stream HTTP/1.0\r\nHost: {admin}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s);
    // No line, header or state, is longer than this.
    const MAX_LINE: u64 = 1 << 20;
    let mut line = String::new();
    (&mut r)
        .take(MAX_LINE)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    if line.split_whitespace().nth(1) != Some("200") {
        return Err(format!("the server answered `{}`", line.trim()));
    }
    loop {
        line.clear();
        if (&mut r)
            .take(MAX_LINE)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?
            == 0
            || line.trim().is_empty()
        {
            break;
        }
    }
    let mut any = false;
    loop {
        line.clear();
        if (&mut r)
            .take(MAX_LINE)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?
            == 0
        {
            return if any {
                Ok(())
            } else {
                Err("the stream ended at once".into())
            };
        }
        let p: petrel_api::PopStates =
            serde_json::from_str(line.trim()).map_err(|e| format!("unreadable states: {e}"))?;
        let states: Arc<[PopState]> = pops
            .iter()
            .zip(initial.iter())
            .map(|(name, &init)| p.pops.iter().find(|x| x.name == *name).map_or(init, |x| x.state))
            .collect();
        *latest.lock().expect("follower") = Some(states);
        version.fetch_add(1, Ordering::Release);
        any = true;
    }
}
