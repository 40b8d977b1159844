//! `[bgp]`'s announcement rules and the `[[anycast]]` blocks.

use crate::model::{BgpConf, Pop};
use crate::raw::{self, S};
use crate::validate::{pop_named, Ctx};
use petrel_anycast::damping::DampingParams;
use petrel_anycast::safety::Safety;
use petrel_anycast::{AfterDrain, Attrs, NeighbourPolicy, OnDown, Service};
use petrel_types::{Asn, Prefix};
use std::net::IpAddr;
use std::time::Duration;

/// The announcement rules of `[bgp]`: owned prefixes, longest lengths,
/// the VRP file, hold-down and damping.
pub(crate) fn rules(
    cx: &mut Ctx<'_>,
    r: &raw::Bgp,
    asn: Asn,
) -> (
    Safety,
    Option<(std::path::PathBuf, crate::Location)>,
    DampingParams,
    Duration,
) {
    let mut owned = Vec::new();
    for (i, o) in r.owned.iter().flatten().enumerate() {
        match Prefix::parse_strict(o.get_ref()) {
            Ok(p) => owned.push(p),
            Err(e) => cx.err(o, format!("bgp.owned[{i}]"), format!("`{}`: {e}", o.get_ref())),
        }
    }
    let max_len_v4 = cx.int(&r.max_announce_v4, "bgp.max_announce_v4", 8, 32, 24u8);
    let max_len_v6 = cx.int(&r.max_announce_v6, "bgp.max_announce_v6", 16, 128, 48u8);
    let vrp_file = r
        .vrp_file
        .as_ref()
        .map(|f| (cx.resolve(f.get_ref()), cx.loc(f.span().start)));
    let hold_down = Duration::from_secs(cx.int(&r.hold_down_secs, "bgp.hold_down_secs", 0, 3600, 5u64));
    let mut damping = DampingParams::default();
    if let Some(d) = &r.damping {
        let d = d.get_ref();
        let f = |k: &str| format!("bgp.damping.{k}");
        damping.half_life = Duration::from_secs(cx.int(&d.half_life_secs, &f("half_life_secs"), 1, 86_400, 900u64));
        damping.penalty = cx.int(&d.penalty, &f("penalty"), 1, 100_000, 1000u32) as f64;
        damping.reuse = cx.int(&d.reuse, &f("reuse"), 1, 100_000, 750u32) as f64;
        damping.suppress = cx.int(&d.suppress, &f("suppress"), 1, 100_000, 2000u32) as f64;
        damping.max_suppress =
            Duration::from_secs(cx.int(&d.max_suppress_secs, &f("max_suppress_secs"), 1, 86_400, 3600u64));
        if damping.reuse >= damping.suppress {
            if let Some(at) = d.reuse.as_ref().or(d.suppress.as_ref()) {
                cx.err(at, f("reuse"), "reuse must be below suppress (RFC 2439 §4.2)");
            }
        }
    }
    let safety = Safety {
        owned,
        max_len_v4,
        max_len_v6,
        origin: asn,
        vrps: None,
    };
    (safety, vrp_file, damping, hold_down)
}

/// "A:B" (each 0..=65535) or a well-known name (RFC 1997, RFC 8326,
/// RFC 7999).
fn community(s: &str) -> Option<u32> {
    match s.to_ascii_lowercase().as_str() {
        "no-export" => return Some(0xFFFF_FF01),
        "no-advertise" => return Some(0xFFFF_FF02),
        "no-export-subconfed" => return Some(0xFFFF_FF03),
        "graceful-shutdown" => return Some(petrel_anycast::GRACEFUL_SHUTDOWN),
        "blackhole" => return Some(0xFFFF_029A),
        _ => {}
    }
    let (a, b) = s.split_once(':')?;
    let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
    Some(u32::from(a) << 16 | u32::from(b))
}

/// "A:B:C", each 0..=4294967295 (RFC 8092).
fn large_community(s: &str) -> Option<[u32; 3]> {
    let mut it = s.split(':').map(|x| x.parse::<u32>().ok());
    let v = [it.next()??, it.next()??, it.next()??];
    it.next().is_none().then_some(v)
}

/// "rt:ASN:N" or "soo:ASN:N" (RFC 4360 §4; two-octet AS specific when the
/// AS fits, four-octet otherwise, RFC 5668), or "0x" and 16 hex digits.
fn extended_community(s: &str) -> Option<u64> {
    if let Some(h) = s.strip_prefix("0x") {
        return (h.len() == 16).then(|| u64::from_str_radix(h, 16).ok()).flatten();
    }
    let mut it = s.split(':');
    let sub: u64 = match it.next()? {
        "rt" => 0x02,
        "soo" => 0x03,
        _ => return None,
    };
    let asn: u64 = it.next()?.parse().ok()?;
    let val: u64 = it.next()?.parse().ok()?;
    if it.next().is_some() || asn > u32::MAX as u64 {
        return None;
    }
    if asn <= 0xFFFF {
        (val <= u32::MAX as u64).then_some(sub << 48 | asn << 32 | val)
    } else {
        (val <= 0xFFFF).then_some(0x02 << 56 | sub << 48 | asn << 16 | val)
    }
}

fn list<T>(cx: &mut Ctx<'_>, v: &[S<String>], field: &str, what: &str, parse: fn(&str) -> Option<T>) -> Vec<T> {
    let mut out = Vec::new();
    for (i, c) in v.iter().enumerate() {
        match parse(c.get_ref()) {
            Some(x) => out.push(x),
            None => cx.err(c, format!("{field}[{i}]"), format!("`{}` is not {what}", c.get_ref())),
        }
    }
    out
}

const COMMUNITY: &str = "a community (`A:B` with each 0..65535, or no-export, no-advertise, no-export-subconfed, graceful-shutdown, blackhole)";
const LARGE: &str = "a large community (`A:B:C`, RFC 8092)";
const EXTENDED: &str = "an extended community (`rt:ASN:N`, `soo:ASN:N` or `0x` and 16 hex digits)";

pub(crate) fn blocks(cx: &mut Ctx<'_>, raw: &[S<raw::Anycast>], pops: &[Pop], bgp: Option<&BgpConf>) -> Vec<Service> {
    let mut out: Vec<Service> = Vec::new();
    for (i, a) in raw.iter().enumerate() {
        let f = |k: &str| format!("anycast[{i}].{k}");
        let r = a.get_ref();
        let Some(bgp) = bgp else {
            cx.err(
                &r.name,
                f("name"),
                "announcements need a `[bgp]` section with `asn`, `router_id` and the peers",
            );
            continue;
        };
        if bgp.asn.0 == 0 {
            cx.err(&r.name, f("name"), "announcements need petrel's own AS: `bgp.asn`");
        }
        let name = r.name.get_ref().clone();
        if out.iter().any(|o| o.name == name) {
            cx.err(&r.name, f("name"), format!("anycast block `{name}` is defined twice"));
        }
        let pop = pop_named(cx, &r.pop, &f("pop"), pops);
        let mut prefixes = Vec::new();
        for (j, p) in r.prefixes.iter().enumerate() {
            let field = format!("anycast[{i}].prefixes[{j}]");
            match Prefix::parse_strict(p.get_ref()) {
                Ok(x) => {
                    if let Err(why) = bgp.safety.check(&x) {
                        cx.err(p, field, format!("{x} cannot be announced: {why}"));
                    } else if let Some(o) = out.iter().find(|o| o.prefixes.contains(&x)) {
                        cx.err(
                            p,
                            field,
                            format!("{x} is already announced by anycast block `{}`", o.name),
                        );
                    } else if prefixes.contains(&x) {
                        cx.err(p, field, format!("{x} is listed twice"));
                    } else {
                        prefixes.push(x);
                    }
                }
                Err(e) => cx.err(p, field, format!("`{}`: {e}", p.get_ref())),
            }
        }
        if r.prefixes.is_empty() {
            cx.err(&r.name, f("prefixes"), "an anycast block announces at least one prefix");
        }
        let drain_grace = Duration::from_secs(cx.int(&r.drain_grace_secs, &f("drain_grace_secs"), 0, 86_400, 60u64));
        let prepend = cx.int(&r.after_drain_prepend, &f("after_drain_prepend"), 1, 16, 3u8);
        let after_drain = match r.after_drain.as_ref().map(|s| s.get_ref().as_str()) {
            None | Some("withdraw") => AfterDrain::Withdraw,
            Some("prepend") => AfterDrain::Prepend(prepend),
            Some(other) => {
                let at = r.after_drain.as_ref().expect("matched Some");
                cx.err(at, f("after_drain"), format!("`{other}`: expected withdraw or prepend"));
                AfterDrain::Withdraw
            }
        };
        let mut neighbours: Vec<NeighbourPolicy> = Vec::new();
        for (j, n) in r.neighbor.iter().enumerate() {
            let f = |k: &str| format!("anycast[{i}].neighbor[{j}].{k}");
            let q = n.get_ref();
            let peer = q.peer.get_ref().clone();
            if !bgp.peers.iter().any(|p| p.name == peer) {
                cx.err(&q.peer, f("peer"), format!("no `[[bgp.peer]]` is named `{peer}`"));
            }
            if neighbours.iter().any(|o| o.neighbour == peer) {
                cx.err(&q.peer, f("peer"), format!("`{peer}` is listed twice"));
            }
            let mut only = Vec::new();
            for (k, p) in q.prefixes.iter().flatten().enumerate() {
                match Prefix::parse_strict(p.get_ref()) {
                    Ok(x) if prefixes.contains(&x) => only.push(x),
                    Ok(x) => cx.err(
                        p,
                        format!("anycast[{i}].neighbor[{j}].prefixes[{k}]"),
                        format!("{x} is not one of this block's prefixes"),
                    ),
                    Err(e) => cx.err(
                        p,
                        format!("anycast[{i}].neighbor[{j}].prefixes[{k}]"),
                        format!("`{}`: {e}", p.get_ref()),
                    ),
                }
            }
            let next_hop = q.next_hop.as_ref().and_then(|h| match h.get_ref().as_str() {
                "self" => None,
                s => match s.parse::<IpAddr>() {
                    Ok(a) => Some(a),
                    Err(_) => {
                        cx.err(h, f("next_hop"), format!("`{s}` is neither `self` nor an IP address"));
                        None
                    }
                },
            });
            let attrs = Attrs {
                prepend: cx.int(&q.prepend, &f("prepend"), 0, 16, 0u8),
                med: q
                    .med
                    .as_ref()
                    .map(|_| cx.int(&q.med, &f("med"), 0, u32::MAX as i64, 0u32)),
                communities: list(cx, &q.communities, &f("communities"), COMMUNITY, community),
                large_communities: list(
                    cx,
                    &q.large_communities,
                    &f("large_communities"),
                    LARGE,
                    large_community,
                ),
                extended_communities: list(
                    cx,
                    &q.extended_communities,
                    &f("extended_communities"),
                    EXTENDED,
                    extended_community,
                ),
                next_hop,
            };
            let on_down = match q.on_down.as_ref().map(|s| s.get_ref().as_str()) {
                None | Some("withdraw") => {
                    for (k, v) in [
                        ("down_prepend", q.down_prepend.is_some()),
                        ("down_med", q.down_med.is_some()),
                        ("down_communities", q.down_communities.is_some()),
                    ] {
                        if v {
                            cx.err(&q.peer, f(k), "applies only with `on_down = \"depref\"`");
                        }
                    }
                    OnDown::Withdraw
                }
                Some("depref") => {
                    let mut d = attrs.clone();
                    d.prepend = cx.int(&q.down_prepend, &f("down_prepend"), 0, 16, 3u8);
                    if q.down_med.is_some() {
                        d.med = Some(cx.int(&q.down_med, &f("down_med"), 0, u32::MAX as i64, 0u32));
                    }
                    if let Some(c) = &q.down_communities {
                        d.communities = list(cx, c, &f("down_communities"), COMMUNITY, community);
                    }
                    OnDown::Depref(d)
                }
                Some(other) => {
                    let at = q.on_down.as_ref().expect("matched Some");
                    cx.err(at, f("on_down"), format!("`{other}`: expected withdraw or depref"));
                    OnDown::Withdraw
                }
            };
            neighbours.push(NeighbourPolicy {
                neighbour: peer,
                prefixes: only,
                attrs,
                on_down,
            });
        }
        if r.neighbor.is_empty() {
            cx.err(
                &r.name,
                f("neighbor"),
                "name at least one `[[anycast.neighbor]]` (a `[[bgp.peer]]`) to announce to",
            );
        }
        out.push(Service {
            name,
            pop,
            prefixes,
            neighbours,
            drain_grace,
            after_drain,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const BASE: &str = r#"
[[pop]]
name = "ams"
ipv4 = ["192.0.2.10"]

[bgp]
asn = 64500
router_id = "192.0.2.1"
owned = ["192.0.2.0/23", "2001:db8::/32"]
hold_down_secs = 2

[[bgp.peer]]
name = "edge"
pop = "ams"
address = "192.0.2.254"
asn = 64510

[[bgp.peer]]
name = "transit"
pop = "ams"
address = "192.0.2.253"
asn = 174
"#;

    fn parse(extra: &str) -> Result<crate::Config, Vec<String>> {
        crate::parse(Path::new("t.toml"), &format!("{BASE}\n{extra}"))
            .map_err(|e| e.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn an_anycast_block_with_per_neighbour_policy() {
        let c = parse(
            r#"
[[anycast]]
name = "web"
pop = "ams"
prefixes = ["192.0.2.0/24", "2001:db8:1::/48"]
drain_grace_secs = 30
after_drain = "prepend"
after_drain_prepend = 4

[[anycast.neighbor]]
peer = "edge"
communities = ["174:10", "no-export"]
large_communities = ["64500:1:2"]
extended_communities = ["rt:64500:100"]
med = 10
on_down = "depref"
down_prepend = 5

[[anycast.neighbor]]
peer = "transit"
prefixes = ["192.0.2.0/24"]
prepend = 1
next_hop = "192.0.2.1"
"#,
        )
        .unwrap();
        let b = c.bgp.as_ref().unwrap();
        assert_eq!(b.hold_down, Duration::from_secs(2));
        assert_eq!(b.safety.max_len_v4, 24);
        let a = &c.anycast[0];
        assert_eq!(a.after_drain, AfterDrain::Prepend(4));
        assert_eq!(a.drain_grace, Duration::from_secs(30));
        let edge = &a.neighbours[0];
        assert_eq!(edge.attrs.communities, [174 << 16 | 10, 0xFFFF_FF01]);
        assert_eq!(edge.attrs.med, Some(10));
        let OnDown::Depref(d) = &edge.on_down else { panic!() };
        assert_eq!((d.prepend, d.med), (5, Some(10)));
        let transit = &a.neighbours[1];
        assert_eq!(transit.prefixes, ["192.0.2.0/24".parse::<Prefix>().unwrap()]);
        assert_eq!(transit.attrs.next_hop, Some("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn what_may_not_be_announced_is_an_error_with_its_line() {
        let e = parse(
            r#"
[[anycast]]
name = "web"
pop = "ams"
prefixes = ["198.51.100.0/24", "192.0.2.0/25", "192.0.2.0/24"]

[[anycast.neighbor]]
peer = "nobody"
communities = ["70000:1"]
on_down = "withdraw"
down_prepend = 2

[[anycast]]
name = "api"
pop = "ams"
prefixes = ["192.0.2.0/24"]
neighbor = [{ peer = "edge" }]
"#,
        )
        .unwrap_err();
        let want = [
            "anycast[0].prefixes[0]: 198.51.100.0/24 cannot be announced: not inside any prefix of `bgp.owned`",
            "anycast[0].prefixes[1]: 192.0.2.0/25 cannot be announced: longer than /24",
            "anycast[0].neighbor[0].peer: no `[[bgp.peer]]` is named `nobody`",
            "anycast[0].neighbor[0].communities[0]: `70000:1` is not a community",
            "anycast[0].neighbor[0].down_prepend: applies only with `on_down = \"depref\"`",
            "anycast[1].prefixes[0]: 192.0.2.0/24 is already announced by anycast block `web`",
        ];
        for w in want {
            assert!(
                e.iter().any(|l| l.contains(w) && l.starts_with("t.toml:")),
                "{w}\n{e:#?}"
            );
        }
        // Anycast without [bgp].
        let e = crate::parse(
            Path::new("t.toml"),
            "[[pop]]\nname = \"ams\"\nipv4 = [\"192.0.2.1\"]\n[[anycast]]\nname = \"x\"\npop = \"ams\"\nprefixes = [\"192.0.2.0/24\"]\n",
        )
        .unwrap_err();
        assert!(e[0].to_string().contains("need a `[bgp]` section"), "{e:?}");
    }

    #[test]
    fn communities_in_their_written_forms() {
        assert_eq!(community("174:10"), Some(174 << 16 | 10));
        assert_eq!(community("65535:0"), Some(petrel_anycast::GRACEFUL_SHUTDOWN));
        assert_eq!(community("graceful-shutdown"), Some(0xFFFF_0000));
        assert_eq!(community("NO-EXPORT"), Some(0xFFFF_FF01));
        for bad in ["174", "70000:1", "1:70000", "1:2:3", "a:b", ""] {
            assert_eq!(community(bad), None, "{bad}");
        }
        assert_eq!(large_community("4200000000:1:2"), Some([4_200_000_000, 1, 2]));
        assert_eq!(large_community("1:2"), None);
        assert_eq!(large_community("1:2:3:4"), None);
        assert_eq!(extended_community("rt:64500:100"), Some(0x0002_FBF4_0000_0064));
        assert_eq!(extended_community("soo:4200000000:7"), Some(0x0203_FA56_EA00_0007));
        assert_eq!(
            extended_community("rt:4200000000:70000"),
            None,
            "4-octet AS: 2-octet value"
        );
        assert_eq!(extended_community("0x0002fbf400000064"), Some(0x0002_FBF4_0000_0064));
        assert_eq!(extended_community("xx:1:2"), None);
    }
}
