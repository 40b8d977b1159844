//! Real routers for the BGP and anycast tests (BIRD 2, FRR's bgpd, any
//! daemon), on loopback or inside a network namespace, and the TCP service
//! a POP's health check probes.

use super::netns::Netns;
use super::{tool, Kill};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `program`, run inside `ns` when there is one.
fn command(ns: Option<&Netns>, program: &str) -> Command {
    match ns {
        Some(ns) => ns.cmd(&tool(program)),
        None => Command::new(tool(program)),
    }
}

pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    loop {
        if f() {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub struct Bird {
    _child: Kill,
    pub ctl: PathBuf,
    pub dir: PathBuf,
}

impl Bird {
    pub fn start(dir: &Path, conf: &str) -> Bird {
        Bird::start_in(None, dir, conf)
    }

    /// BIRD in the foreground on `dir/bird.conf`, its control socket in
    /// `dir` (a Unix socket: birdc reaches it from any namespace).
    pub fn start_in(ns: Option<&Netns>, dir: &Path, conf: &str) -> Bird {
        let cfg = dir.join("bird.conf");
        std::fs::write(&cfg, conf).unwrap();
        let ctl = dir.join("bird.ctl");
        let log = std::fs::File::create(dir.join("bird.log")).unwrap();
        let child = command(ns, "bird")
            .arg("-f")
            .arg("-c")
            .arg(&cfg)
            .arg("-s")
            .arg(&ctl)
            .arg("-P")
            .arg(dir.join("bird.pid"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let b = Bird {
            _child: Kill(child),
            ctl,
            dir: dir.to_path_buf(),
        };
        wait_for("BIRD's control socket", Duration::from_secs(10), || b.ctl.exists());
        b
    }

    pub fn birdc(&self, cmd: &str) -> String {
        let out = Command::new(tool("birdc"))
            .arg("-s")
            .arg(&self.ctl)
            .args(cmd.split_whitespace())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    pub fn pid(&self) -> String {
        std::fs::read_to_string(self.dir.join("bird.pid"))
            .unwrap()
            .trim()
            .to_string()
    }
}

/// A peer process killed (with its children) when the test ends.
pub fn daemon(dir: &Path, log: &str, cmd: &str, args: &[&str], env: &[(&str, &str)]) -> Kill {
    daemon_in(None, dir, log, cmd, args, env)
}

pub fn daemon_in(ns: Option<&Netns>, dir: &Path, log: &str, cmd: &str, args: &[&str], env: &[(&str, &str)]) -> Kill {
    let log = std::fs::File::create(dir.join(log)).unwrap();
    let mut c = command(ns, cmd);
    c.args(args)
        .current_dir(dir)
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    for (k, v) in env {
        c.env(k, v);
    }
    Kill(c.spawn().unwrap())
}

/// FRR's bgpd without zebra on `dir/bgpd.conf`, listening on
/// `listen:port`, its vty socket in `dir`; `extra` adds arguments (modules).
pub fn bgpd(dir: &Path, port: u16, listen: &str, extra: &[&str]) -> Kill {
    bgpd_in(None, dir, port, listen, extra)
}

pub fn bgpd_in(ns: Option<&Netns>, dir: &Path, port: u16, listen: &str, extra: &[&str]) -> Kill {
    let conf = dir.join("bgpd.conf").display().to_string();
    let pid = dir.join("bgpd.pid").display().to_string();
    let vty = dir.display().to_string();
    let port = port.to_string();
    let mut c = command(ns, "/usr/lib/frr/bgpd");
    c.args([
        "-f",
        &conf,
        "-i",
        &pid,
        "-Z",
        "-S",
        "-n",
        "-p",
        &port,
        "-l",
        listen,
        "--vty_socket",
        &vty,
        "-P",
        "0",
    ])
    .args(extra)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    Kill(c.spawn().expect("FRR's bgpd (Debian package frr)"))
}

/// A TCP service a health check probes, stopped when dropped. Started in a
/// namespace with `ns.enter(|| Target::start(port))`.
pub struct Target(
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    Option<std::thread::JoinHandle<()>>,
);

impl Target {
    pub fn start(port: u16) -> Target {
        // Flapping tests start it again on the same port.
        let l = super::listen_again(port);
        l.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let t = std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                if l.accept().is_err() {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        });
        Target(stop, Some(t))
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.1.take() {
            let _ = t.join();
        }
    }
}

/// GoBGP 3 (AS 4200000040) on 127.{n}.0.4:`port`, passive towards petrel
/// with IPv4 and IPv6 unicast, its API on 127.0.0.1:`api`.
pub fn gobgpd(dir: &Path, n: u8, port: u16, api: u16) -> Kill {
    std::fs::write(
        dir.join("gobgpd.toml"),
        format!(
            r#"
[global.config]
  as = 4200000040
  router-id = "127.{n}.0.4"
  port = {port}
  local-address-list = ["127.{n}.0.4"]

[[neighbors]]
  [neighbors.config]
    neighbor-address = "127.0.0.1"
    peer-as = 64600
  [neighbors.transport.config]
    passive-mode = true
    local-address = "127.{n}.0.4"
  [neighbors.ebgp-multihop.config]
    enabled = true
    multihop-ttl = 2
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
"#
        ),
    )
    .unwrap();
    let api_host = format!("127.0.0.1:{api}");
    daemon(
        dir,
        "gobgpd.log",
        "gobgpd",
        &["-f", "gobgpd.toml", "--api-hosts", &api_host, "--pprof-disable", "-p"],
        &[],
    )
}

/// The `gobgp` CLI against the API on 127.0.0.1:`api`, retried for up to
/// 10 s while gobgpd starts.
pub fn gobgp_cli(api: u16, args: &[&str]) {
    let api_port = api.to_string();
    let mut a = vec!["-u", "127.0.0.1", "-p", &api_port];
    a.extend_from_slice(args);
    let limit = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new(tool("gobgp")).args(&a).output().unwrap();
        if out.status.success() {
            return;
        }
        assert!(
            Instant::now() < limit,
            "gobgp {a:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
