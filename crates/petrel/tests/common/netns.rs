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
