//! What a reload changes, so that components keep what did not change: a
//! BGP session whose parameters are the same keeps running; one that
//! changed is closed with Cease "Other Configuration Change" and started
//! again; one that is gone is closed with "Peer De-configured" (RFC 4486).

use crate::model::{BgpBmpConf, BgpConf, BgpMrtConf, BgpPeerConf};

/// Why a running session stops (its RFC 4486 Cease subcode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The peer is no longer configured (Cease/3).
    Deconfigured,
    /// Its parameters, or the router ID, changed (Cease/6).
    Changed,
}

impl StopReason {
    pub fn cease_subcode(self) -> u8 {
        match self {
            StopReason::Deconfigured => 3,
            StopReason::Changed => 6,
        }
    }
}

/// What a new `[bgp]` section changes against the one running.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BgpDiff {
    /// Running sessions to close, by peer name.
    pub stop: Vec<(String, StopReason)>,
    /// Sessions to start: new peers and changed ones.
    pub start: Vec<BgpPeerConf>,
    /// MRT dumps to drop and to load; a dump is identified by its whole
    /// config, so any change reloads it.
    pub unload_mrt: Vec<BgpMrtConf>,
    pub load_mrt: Vec<BgpMrtConf>,
    /// The BMP routers' mapping changed: their streams restart (a stream
    /// cannot be resynchronised short of reconnecting).
    pub bmp: Option<Vec<BgpBmpConf>>,
}

/// The changes from `old` (what runs; None at start or without BGP) to
/// `new`.
pub fn bgp_diff(old: Option<&BgpConf>, new: Option<&BgpConf>) -> BgpDiff {
    fn peers(c: Option<&BgpConf>) -> &[BgpPeerConf] {
        c.map_or(&[], |c| &c.peers)
    }
    fn mrt(c: Option<&BgpConf>) -> &[BgpMrtConf] {
        c.map_or(&[], |c| &c.mrt)
    }
    fn bmp(c: Option<&BgpConf>) -> &[BgpBmpConf] {
        c.map_or(&[], |c| &c.bmp)
    }
    let router_id = |c: Option<&BgpConf>| c.map(|c| c.router_id);
    // The feeds' default limits apply to every feed: a change restarts them
    // all (sessions, MRT dumps, BMP stations) under the new ones.
    let limits = |c: Option<&BgpConf>| c.map(|c| (c.max_prefix, c.max_attr_bytes));
    let same_limits = limits(old) == limits(new);
    let same_id = router_id(old) == router_id(new) && same_limits;
    let mut d = BgpDiff::default();
    for p in peers(old) {
        match peers(new).iter().find(|n| n.name == p.name) {
            Some(n) if n == p && same_id => {}
            Some(n) => {
                d.stop.push((p.name.clone(), StopReason::Changed));
                d.start.push(n.clone());
            }
            None => d.stop.push((p.name.clone(), StopReason::Deconfigured)),
        }
    }
    for n in peers(new) {
        if !peers(old).iter().any(|p| p.name == n.name) {
            d.start.push(n.clone());
        }
    }
    d.unload_mrt = mrt(old)
        .iter()
        .filter(|m| !same_limits || !mrt(new).contains(m))
        .cloned()
        .collect();
    d.load_mrt = mrt(new)
        .iter()
        .filter(|m| !same_limits || !mrt(old).contains(m))
        .cloned()
        .collect();
    if bmp(old) != bmp(new) || (!same_limits && !bmp(new).is_empty()) {
        d.bmp = Some(bmp(new).to_vec());
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn conf(extra: &str) -> BgpConf {
        let text = format!(
            r#"
[server]
dns = ["127.0.0.1:0"]
[[pop]]
name = "ams"
ipv4 = ["192.0.2.10"]
[[pop]]
name = "iad"
ipv4 = ["192.0.2.20"]
{extra}
"#
        );
        crate::parse(Path::new("t.toml"), &text)
            .unwrap_or_else(|e| panic!("{e:?}"))
            .bgp
            .expect("a [bgp] section")
    }

    const PEERS: &str = r#"
[bgp]
asn = 64496
router_id = "192.0.2.1"
bmp_listen = "127.0.0.1:11019"
[[bgp.peer]]
name = "a"
pop = "ams"
address = "192.0.2.2"
asn = 64500
[[bgp.peer]]
name = "b"
pop = "iad"
address = "192.0.2.3"
asn = 64501
[[bgp.mrt]]
file = "ams.mrt"
pop = "ams"
"#;

    fn names(v: &[BgpPeerConf]) -> Vec<&str> {
        v.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn at_start_everything_starts() {
        let new = conf(PEERS);
        let d = bgp_diff(None, Some(&new));
        assert!(d.stop.is_empty());
        assert_eq!(names(&d.start), ["a", "b"]);
        assert_eq!(d.load_mrt.len(), 1);
        assert_eq!(d.bmp, None);
    }

    #[test]
    fn unchanged_sessions_keep_running() {
        let old = conf(PEERS);
        assert_eq!(bgp_diff(Some(&old), Some(&conf(PEERS))), BgpDiff::default());
    }

    #[test]
    fn changed_peers_restart_and_removed_ones_are_deconfigured() {
        let old = conf(PEERS);
        let new = conf(&PEERS.replace("asn = 64501", "asn = 64511").replace(
            "[[bgp.peer]]\nname = \"a\"\npop = \"ams\"\naddress = \"192.0.2.2\"\nasn = 64500\n",
            "[[bgp.peer]]\nname = \"c\"\npop = \"ams\"\naddress = \"192.0.2.4\"\nasn = 64502\n",
        ));
        let d = bgp_diff(Some(&old), Some(&new));
        assert_eq!(
            d.stop,
            [
                ("a".to_string(), StopReason::Deconfigured),
                ("b".to_string(), StopReason::Changed)
            ]
        );
        assert_eq!(names(&d.start), ["b", "c"]);
        assert_eq!(StopReason::Deconfigured.cease_subcode(), 3);
        assert_eq!(StopReason::Changed.cease_subcode(), 6);
    }

    #[test]
    fn a_new_router_id_restarts_every_session() {
        let old = conf(PEERS);
        let new = conf(&PEERS.replace("192.0.2.1", "192.0.2.9"));
        let d = bgp_diff(Some(&old), Some(&new));
        assert_eq!(d.stop.len(), 2);
        assert!(d.stop.iter().all(|(_, w)| *w == StopReason::Changed));
        assert_eq!(names(&d.start), ["a", "b"]);
    }

    #[test]
    fn new_feed_limits_restart_every_feed() {
        let old = conf(PEERS);
        let new = conf(&PEERS.replace("asn = 64496\n", "asn = 64496\nmax_prefix = 1000\n"));
        assert_eq!((old.max_prefix, new.max_prefix), (4_000_000, 1000));
        let d = bgp_diff(Some(&old), Some(&new));
        assert_eq!(d.stop.len(), 2);
        assert_eq!((d.unload_mrt.len(), d.load_mrt.len()), (1, 1));
        let new = conf(&PEERS.replace("asn = 64496\n", "asn = 64496\nmax_attr_mb = 64\n"));
        assert_eq!(new.max_attr_bytes, 64 << 20);
        assert_eq!(bgp_diff(Some(&old), Some(&new)).start.len(), 2);
    }

    #[test]
    fn dumps_and_bmp_routers_follow_their_whole_config() {
        let old = conf(PEERS);
        let new = conf(&format!(
            "{}\n[[bgp.bmp]]\nrouter = \"192.0.2.7\"\npop = \"iad\"\n",
            PEERS.replace("file = \"ams.mrt\"", "file = \"ams2.mrt\"")
        ));
        let d = bgp_diff(Some(&old), Some(&new));
        assert_eq!(d.unload_mrt[0].file, Path::new("ams.mrt"));
        assert_eq!(d.load_mrt[0].file, Path::new("ams2.mrt"));
        assert_eq!(d.bmp.as_ref().map(Vec::len), Some(1));
        // BGP removed altogether: every session is de-configured.
        let d = bgp_diff(Some(&old), None);
        assert_eq!(d.stop.len(), 2);
        assert_eq!(d.unload_mrt.len(), 1);
    }
}
