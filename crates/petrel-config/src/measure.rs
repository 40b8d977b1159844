//! `[measure]`: how measured latency is turned into decisions.

use crate::model::{ClickhouseConf, MeasureConf, Pop, Webhook, Whoami, ZoneConf};
use crate::raw::{self, S};
use crate::validate::{pop_named, Ctx};
use petrel_dns_wire::name;
use petrel_measure::aggregate::Decay;
use petrel_measure::alert::AlertParams;
use petrel_measure::ranking::RankParams;
use petrel_measure::rum::TagConfig;
use petrel_measure::sample::UnitMode;

pub(crate) fn measure(cx: &mut Ctx<'_>, m: &S<raw::Measure>, pops: &[Pop], zones: &[ZoneConf]) -> MeasureConf {
    let r = m.get_ref();
    let f = |k: &str| format!("measure.{k}");
    let half_life_mins: u64 = cx.int(&r.half_life_mins, &f("half_life_mins"), 1, 30 * 24 * 60, 360);
    let min_samples: u32 = cx.int(&r.min_samples, &f("min_samples"), 1, 1_000_000, 10);
    let min_pops: usize = cx.int(&r.min_pops, &f("min_pops"), 1, 1_000, 2);
    let tie_ms: u32 = cx.int(&r.tie_ms, &f("tie_ms"), 0, 10_000, 5);
    let v4_len: u8 = cx.int(&r.unit_v4_len, &f("unit_v4_len"), 8, 32, 24);
    let v6_len: u8 = cx.int(&r.unit_v6_len, &f("unit_v6_len"), 16, 128, 48);
    let unit = match r.unit.as_ref().map_or("bgp", |u| u.get_ref().as_str()) {
        "bgp" => UnitMode::Bgp { v4_len, v6_len },
        "fixed" => UnitMode::Fixed { v4_len, v6_len },
        other => {
            if let Some(u) = &r.unit {
                cx.err(u, f("unit"), format!("`{other}` is not one of bgp, fixed"));
            }
            UnitMode::default()
        }
    };
    let whoami = r.rum.as_ref().and_then(|t| whoami(cx, t, zones));
    let mut rum_tag = r.rum.as_ref().map(|t| rum(cx, t, pops));
    if let (Some(tag), Some(_)) = (rum_tag.as_mut(), &whoami) {
        tag.whoami = r
            .rum
            .as_ref()
            .and_then(|t| t.get_ref().whoami_url.as_ref())
            .map(|u| u.get_ref().clone());
    }
    // Exploration is for learning: off unless browsers measure too.
    let explore: u32 = cx.int(
        &r.explore_percent,
        &f("explore_percent"),
        0,
        10,
        if r.rum.is_some() { 2 } else { 0 },
    );
    if let (Some(e), None) = (&r.explore_percent, &r.rum) {
        if explore > 0 {
            cx.err(e, f("explore_percent"), "exploration needs a [measure.rum] section");
        }
    }
    let clickhouse = r.clickhouse.as_ref().and_then(|c| clickhouse(cx, c));
    if let (Some(d), Some(_)) = (&r.database, &clickhouse) {
        cx.err(
            d,
            f("database"),
            "samples go to one store: remove `database` or [measure.clickhouse]",
        );
    }
    let reverse_dns = r.reverse_dns.as_ref().and_then(|a| match a.get_ref().parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            cx.err(
                a,
                f("reverse_dns"),
                format!("`{}` is not an address:port, e.g. 127.0.0.53:53", a.get_ref()),
            );
            None
        }
    });
    MeasureConf {
        reverse_dns,
        clickhouse,
        explore_ppm: explore * 10_000,
        whoami,
        decay: Decay {
            half_life_ms: half_life_mins * 60_000,
        },
        rank: RankParams {
            min_samples: f64::from(min_samples),
            min_pops,
            tie_ms: f64::from(tie_ms),
            ..RankParams::default()
        },
        unit,
        recompile_secs: cx.int(&r.recompile_secs, &f("recompile_secs"), 1, 86_400, 60),
        max_units: cx.int(&r.max_units, &f("max_units"), 1, 100_000_000, 2_000_000),
        database: r.database.as_ref().map(|d| cx.resolve(d.get_ref())),
        retention_days: cx.int(&r.retention_days, &f("retention_days"), 1, 3650, 30),
        rollup_days: cx.int(&r.rollup_days, &f("rollup_days"), 0, 3650, 400),
        rum: rum_tag,
        alerts: r.alerts.as_ref().map(|a| alerts(cx, a)),
        webhook: r
            .alerts
            .as_ref()
            .and_then(|a| a.get_ref().webhook.as_ref())
            .and_then(|w| webhook(cx, w)),
    }
}

/// `[measure.clickhouse]`: its HTTP interface (plain HTTP: the client is
/// built without TLS) and a database name that needs no quoting.
fn clickhouse(cx: &mut Ctx<'_>, c: &S<raw::Clickhouse>) -> Option<ClickhouseConf> {
    let r = c.get_ref();
    let url = r.url.get_ref();
    let rest = url.strip_prefix("http://").unwrap_or("");
    if rest.is_empty() || rest.contains(char::is_whitespace) {
        cx.err(
            &r.url,
            "measure.clickhouse.url",
            format!("`{url}`: the HTTP interface's URL, e.g. http://127.0.0.1:8123 (https is not supported)"),
        );
        return None;
    }
    let database = r.database.as_ref().map_or("petrel", |d| d.get_ref().as_str());
    let ok = !database.is_empty()
        && database.len() <= 64
        && database.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !database.starts_with(|c: char| c.is_ascii_digit());
    if !ok {
        if let Some(d) = &r.database {
            cx.err(
                d,
                "measure.clickhouse.database",
                format!("`{database}`: letters, digits and `_`, not starting with a digit"),
            );
        }
        return None;
    }
    Some(ClickhouseConf {
        url: url.trim_end_matches('/').to_string(),
        database: database.to_string(),
        user: r.user.as_ref().map_or("default", |u| u.get_ref().as_str()).to_string(),
        password: r.password.as_ref().map(|p| p.get_ref().clone()).unwrap_or_default(),
    })
}

/// `http://host[:port][/path]`. HTTPS is refused: the webhook client
/// speaks plain HTTP (a relay on the same host can add TLS).
fn webhook(cx: &mut Ctx<'_>, w: &S<String>) -> Option<Webhook> {
    let url = w.get_ref();
    let Some(rest) = url.strip_prefix("http://") else {
        cx.err(
            w,
            "measure.alerts.webhook",
            format!("`{url}`: the webhook must be an http:// URL (https is not supported)"),
        );
        return None;
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && !authority.ends_with(']') => (h, p.parse::<u16>().ok()),
        _ => (authority, Some(80)),
    };
    if host.is_empty() || port.is_none() || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        cx.err(
            w,
            "measure.alerts.webhook",
            format!("`{url}` is not a URL of the form http://host:port/path"),
        );
        return None;
    }
    Some(Webhook {
        url: url.clone(),
        authority: format!("{host}:{}", port.unwrap_or(80)),
        path: path.to_string(),
    })
}

fn alerts(cx: &mut Ctx<'_>, a: &S<raw::Alerts>) -> AlertParams {
    let r = a.get_ref();
    let f = |k: &str| format!("measure.alerts.{k}");
    let margin: u32 = cx.int(&r.margin_percent, &f("margin_percent"), 1, 10_000, 30);
    let min_increase: u32 = cx.int(&r.min_increase_ms, &f("min_increase_ms"), 0, 60_000, 10);
    let open: u64 = cx.int(&r.open_after_secs, &f("open_after_secs"), 0, 86_400, 300);
    let close: u64 = cx.int(&r.close_after_secs, &f("close_after_secs"), 0, 86_400, 600);
    let baseline: u64 = cx.int(
        &r.baseline_half_life_mins,
        &f("baseline_half_life_mins"),
        1,
        43_200,
        1_440,
    );
    let current: u64 = cx.int(&r.current_half_life_secs, &f("current_half_life_secs"), 1, 86_400, 120);
    let min_baseline: u32 = cx.int(&r.min_baseline_samples, &f("min_baseline_samples"), 1, 1_000_000, 50);
    let min_current: u32 = cx.int(&r.min_current_samples, &f("min_current_samples"), 1, 1_000_000, 10);
    AlertParams {
        margin: f64::from(margin) / 100.0,
        min_increase_ms: f64::from(min_increase),
        open_after_ms: open * 1000,
        close_after_ms: close * 1000,
        baseline: Decay {
            half_life_ms: baseline * 60_000,
        },
        current: Decay {
            half_life_ms: current * 1000,
        },
        min_baseline_samples: f64::from(min_baseline),
        min_current_weight: f64::from(min_current),
    }
}

/// `whoami_url` and `whoami_addresses`: both or neither; the URL's host is
/// `{id}.` then a name inside one of the zones petrel serves.
fn whoami(cx: &mut Ctx<'_>, t: &S<raw::Rum>, zones: &[ZoneConf]) -> Option<Whoami> {
    let r = t.get_ref();
    let (url, addrs) = match (&r.whoami_url, &r.whoami_addresses) {
        (None, None) => return None,
        (Some(u), None) => {
            cx.err(
                u,
                "measure.rum.whoami_url",
                "needs whoami_addresses: what the unique names resolve to (where the URL is served)",
            );
            return None;
        }
        (None, Some(a)) => {
            cx.err(a, "measure.rum.whoami_addresses", "needs whoami_url");
            return None;
        }
        (Some(u), Some(a)) => (u, a),
    };
    let text = url.get_ref();
    let host = text
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""))
        .map(|h| {
            h.rsplit_once(':')
                .filter(|(_, p)| p.parse::<u16>().is_ok())
                .map_or(h, |(h, _)| h)
        });
    let Some(domain) = host.and_then(|h| h.strip_prefix("{id}.")) else {
        cx.err(
            url,
            "measure.rum.whoami_url",
            format!("`{text}`: the host must be `{{id}}.` and a name, e.g. https://{{id}}.whoami.example.net/rum/o"),
        );
        return None;
    };
    let wire = match name::from_text(domain) {
        Ok(w) => name::to_lowercase(&w),
        Err(e) => {
            cx.err(url, "measure.rum.whoami_url", format!("`{domain}`: {e}"));
            return None;
        }
    };
    if !zones
        .iter()
        .any(|z| name::is_subdomain(&wire, &name::to_lowercase(&z.origin_wire)))
    {
        cx.err(
            url,
            "measure.rum.whoami_url",
            format!("`{domain}` is in none of the zones served here: the DNS side could not see the queries"),
        );
        return None;
    }
    let mut out = Whoami {
        domain_wire: wire,
        v4: Vec::new(),
        v6: Vec::new(),
    };
    for (i, a) in addrs.get_ref().iter().enumerate() {
        match a.get_ref().parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(v)) => out.v4.push(v),
            Ok(std::net::IpAddr::V6(v)) => out.v6.push(v),
            Err(_) => cx.err(
                a,
                format!("measure.rum.whoami_addresses[{i}]"),
                format!("`{}` is not an IP address", a.get_ref()),
            ),
        }
    }
    if out.v4.is_empty() && out.v6.is_empty() {
        cx.err(addrs, "measure.rum.whoami_addresses", "needs at least one address");
        return None;
    }
    Some(out)
}

fn rum(cx: &mut Ctx<'_>, t: &S<raw::Rum>, pops: &[Pop]) -> TagConfig {
    let r = t.get_ref();
    if !r.url.get_ref().contains("{pop}") {
        cx.err(
            &r.url,
            "measure.rum.url",
            "the beacon URL needs `{pop}`, replaced by each POP's name",
        );
    }
    let names = match &r.pops {
        Some(list) => {
            let mut out = Vec::new();
            for (i, n) in list.get_ref().iter().enumerate() {
                pop_named(cx, n, &format!("measure.rum.pops[{i}]"), pops);
                if pops.iter().any(|p| p.name == *n.get_ref()) {
                    out.push(n.get_ref().clone());
                }
            }
            out
        }
        None => pops.iter().map(|p| p.name.clone()).collect(),
    };
    let sample: u8 = cx.int(&r.sample_percent, "measure.rum.sample_percent", 0, 100, 10);
    TagConfig {
        sample: f64::from(sample),
        pops: names,
        url: r.url.get_ref().clone(),
        collector: r
            .collector
            .as_ref()
            .map_or_else(|| "/rum/beacon".to_string(), |c| c.get_ref().clone()),
        whoami: None,
    }
}
