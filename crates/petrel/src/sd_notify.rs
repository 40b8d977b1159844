//! The systemd notify protocol (sd_notify(3)), without libsystemd: one
//! datagram per state change to the socket `NOTIFY_SOCKET` names (a path,
//! or an abstract name after `@`). READY=1 once serving; RELOADING=1 (with
//! MONOTONIC_USEC, as `Type=notify-reload` wants) then READY=1 around each
//! reload; WATCHDOG=1 every half `WATCHDOG_USEC` while the control runtime
//! answers. Without `NOTIFY_SOCKET` every call does nothing.

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

struct Notifier {
    sock: UnixDatagram,
    addr: std::os::unix::net::SocketAddr,
}

fn notifier() -> Option<&'static Notifier> {
    static N: OnceLock<Option<Notifier>> = OnceLock::new();
    N.get_or_init(|| {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name).ok()?
            }
            None => std::os::unix::net::SocketAddr::from_pathname(&path).ok()?,
        };
        let sock = UnixDatagram::unbound().ok()?;
        Some(Notifier { sock, addr })
    })
    .as_ref()
}

fn send(msg: &str) {
    if let Some(n) = notifier() {
        if let Err(e) = n.sock.send_to_addr(msg.as_bytes(), &n.addr) {
            tracing::warn!(error = %e, "cannot notify systemd");
        }
    }
}

/// READY=1 was sent: the start is over (reloads before it say nothing:
/// systemd would take their READY=1 for the end of the start).
static STARTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Serving: the listeners are bound and answers come from a generation
/// with everything it was configured to know (after the warm-up).
pub fn ready(status: &str) {
    STARTED.store(true, Relaxed);
    send(&format!("READY=1\nSTATUS={status}\nMAINPID={}", std::process::id()));
}

/// Still starting, with why (STATUS= only).
pub fn starting(status: &str) {
    send(&format!("STATUS={status}"));
}

/// A reload ended (after [`reloading`]).
pub fn reloaded(status: &str) {
    if STARTED.load(Relaxed) {
        send(&format!("READY=1\nSTATUS={status}"));
    }
}

/// A reload begins.
pub fn reloading() {
    if !STARTED.load(Relaxed) {
        return;
    }
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the struct given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let usec = ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000;
    send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
}

/// The watchdog period systemd asks for, if any (and if it is this
/// process it asks).
fn watchdog_period() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Ping the watchdog every half period while `rt` runs its tasks: a
/// control runtime that stops answering (deadlocked, starved) stops the
/// pings, and systemd restarts the service.
pub fn watchdog(rt: &tokio::runtime::Handle) {
    let Some(period) = watchdog_period() else { return };
    if notifier().is_none() {
        return;
    }
    let beat = Arc::new(AtomicU64::new(0));
    let b = beat.clone();
    rt.spawn(async move {
        let mut t = tokio::time::interval(period / 4);
        loop {
            t.tick().await;
            b.fetch_add(1, Relaxed);
        }
    });
    let r = std::thread::Builder::new().name("watchdog".into()).spawn(move || {
        let mut last = u64::MAX;
        loop {
            std::thread::sleep(period / 2);
            let now = beat.load(Relaxed);
            if now != last {
                send("WATCHDOG=1");
            } else {
                tracing::error!("the control runtime did not run for half the watchdog period; not pinging systemd");
            }
            last = now;
        }
    });
    if let Err(e) = r {
        tracing::warn!(error = %e, "no watchdog thread");
    }
}
