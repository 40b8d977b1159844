//! Network namespaces that a test creates and removes: each is a small
//! host of its own (its own loopback, veth links to its neighbours), so
//! BGP sessions run between real interfaces and addresses without any
//! packet leaving the machine.

use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A namespace, deleted when dropped. Drop it after the processes that run
/// in it (declare it first).
pub struct Netns {
    pub name: String,
    links: u32,
}

fn ip(args: &[&str]) {
    let out = Command::new(super::tool("ip")).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}\n(network namespaces need root: run the tests as `sudo scripts/test`)",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    /// A new namespace with its loopback up. `tag` names it in `ip netns`
    /// (with this test process's id, so that parallel runs do not meet).
    pub fn new(tag: &str) -> Netns {
        let name = format!(
            "petrel-{}-{}-{tag}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        let ns = Netns { name, links: 0 };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    /// A command run inside the namespace.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(super::tool("ip"));
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Run `f` on a thread that has entered the namespace: sockets it
    /// opens live there (and keep working from any thread afterwards).
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let fd = std::fs::File::open(&path).unwrap();
                // SAFETY: setns on a namespace file this thread opened;
                // it only changes this (scoped, short-lived) thread.
                let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new(super::tool("ip"))
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A veth link between two namespaces, with the given addresses (CIDR
/// notation; IPv6 ones skip duplicate address detection so they work at
/// once). Returns the two interface names.
pub fn link(a: &mut Netns, a_addrs: &[&str], b: &mut Netns, b_addrs: &[&str]) -> (String, String) {
    let (ia, ib) = (format!("eth{}", a.links), format!("eth{}", b.links));
    a.links += 1;
    b.links += 1;
    ip(&[
        "-n", &a.name, "link", "add", &ia, "type", "veth", "peer", "name", &ib, "netns", &b.name,
    ]);
    for (ns, dev, addrs) in [(&*a, &ia, a_addrs), (&*b, &ib, b_addrs)] {
        for addr in addrs {
            let mut args = vec!["-n", &ns.name, "addr", "add", addr, "dev", dev];
            if addr.contains(':') {
                args.push("nodad");
            }
            ip(&args);
        }
        ip(&["-n", &ns.name, "link", "set", dev, "up"]);
    }
    (ia, ib)
}

/// A link between two namespaces that delays every packet by `one_way` in
/// each direction (a round trip of twice that), for kernels without
/// `tc netem`: a TUN device in each namespace, and this process carrying
/// IP packets between them after the delay. Stopped when dropped.
pub struct DelayLink {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

/// A TUN device named `dev` in `ns` (raw IP packets, no header), with its
/// address up; returns its file descriptor (non-blocking).
fn tun(ns: &Netns, dev: &str, addr: &str) -> std::fs::File {
    let f = ns.enter(|| {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .expect("/dev/net/tun");
        let mut ifr = [0u8; 40];
        ifr[..dev.len()].copy_from_slice(dev.as_bytes());
        let flags = (libc::IFF_TUN | libc::IFF_NO_PI) as i16;
        ifr[16..18].copy_from_slice(&flags.to_ne_bytes());
        // SAFETY: ifreq-sized buffer for TUNSETIFF on a TUN fd we own.
        let rc = unsafe { libc::ioctl(f.as_raw_fd(), TUNSETIFF as _, ifr.as_mut_ptr()) };
        assert_eq!(rc, 0, "TUNSETIFF: {}", std::io::Error::last_os_error());
        f
    });
    // SAFETY: setting O_NONBLOCK on our own descriptor.
    unsafe {
        let fl = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(f.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    ip(&["-n", &ns.name, "addr", "add", addr, "dev", dev]);
    ip(&["-n", &ns.name, "link", "set", dev, "up"]);
    f
}

impl DelayLink {
    pub fn new(a: &Netns, a_addr: &str, b: &Netns, b_addr: &str, one_way: std::time::Duration) -> DelayLink {
        use std::io::{Read, Write};
        let ta = tun(a, "dly0", a_addr);
        let tb = tun(b, "dly0", b_addr);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut threads = Vec::new();
        for (mut from, mut to) in [(ta.try_clone().unwrap(), tb.try_clone().unwrap()), (tb, ta)] {
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || {
                let mut queue: std::collections::VecDeque<(std::time::Instant, Vec<u8>)> = Default::default();
                let mut buf = vec![0u8; 65536];
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // Take what arrived, then send what is due; a 1 ms tick
                    // bounds the error on the delay.
                    loop {
                        match from.read(&mut buf) {
                            Ok(n) if n > 0 => queue.push_back((std::time::Instant::now() + one_way, buf[..n].to_vec())),
                            _ => break,
                        }
                    }
                    while queue.front().is_some_and(|(t, _)| *t <= std::time::Instant::now()) {
                        let (_, p) = queue.pop_front().unwrap();
                        let _ = to.write(&p);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }));
        }
        DelayLink { stop, threads }
    }
}

impl Drop for DelayLink {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
