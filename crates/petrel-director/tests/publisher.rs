//! The publisher's ordering rules and decide(), without sockets: configs
//! built from text as a server builds them, routing views made by hand.

use petrel_director::{build, Built, ChangeKind, Decision, Input, OverrideAction, Overrides, Publisher, Sources};
use petrel_mapping::{BgpData, BgpDataBuilder};
use petrel_types::{Family, PopIdx, PopState, Prefix, ServiceIdx};
use std::path::Path;
use std::sync::{Arc, Mutex};

const BASE: &str = r#"
[server]
dns = ["127.0.0.1:0"]
[[pop]]
name = "ams"
ipv4 = ["192.0.2.10"]
asns = [64500]
[[pop]]
name = "nyc"
ipv4 = ["192.0.2.20"]
asns = [64501]
[[pop]]
name = "sin"
ipv4 = ["192.0.2.30"]
asns = [64502]
[[pop.check]]
type = "tcp"
address = "192.0.2.30"
port = 80
[[zone]]
origin = "example.net."
file = "example.net.zone"
[bgp]
[[bgp.mrt]]
file = "ams.mrt"
pop = "ams"
[[service]]
name = "www.example.net."
ttl = 60
degraded_ttl = 5
answers = 1
policy = [{ type = "priority", pops = ["ams", "nyc", "sin"] }]
[[service]]
name = "bgp.example.net."
ttl = 30
policy = [{ type = "super-sparrow" }, { type = "priority", pops = ["sin", "nyc", "ams"] }]
"#;

fn sources() -> Sources {
    let mut s = Sources::default();
    s.texts.insert(
        "example.net.zone".into(),
        Ok("@ SOA ns h 1 2 3 4 60\n@ NS ns\nns A 192.0.2.1\n".into()),
    );
    s.mrt.insert("ams.mrt".into(), Ok(()));
    s
}

fn built(extra: &str) -> Built {
    let text = format!("{BASE}{extra}");
    let config = petrel_config::parse(Path::new("t.toml"), &text).unwrap_or_else(|e| panic!("{e:?}"));
    build(config, &sources(), None).unwrap()
}

/// Views in which `pop`'s own AS is the origin of 10.0.0.0/8 as seen from
/// every POP: super-sparrow then prefers `pop` for 10/8.
fn views_preferring(pop: u16) -> Arc<BgpData> {
    let mut b = BgpDataBuilder::new();
    for (i, name) in ["ams", "nyc", "sin"].iter().enumerate() {
        let mut vb = b.view_builder(*name, PopIdx(i as u16));
        let id = vb.path_id([64999, 64500 + u32::from(pop)], 2);
        vb.push("10.0.0.0/8".parse().unwrap(), id);
        vb.finish();
    }
    Arc::new(b.build())
}

fn decide(p: &Publisher, service: u16, client: &str) -> (Vec<String>, u32) {
    let g = p.load();
    let mut d = Decision::default();
    let c: Prefix = client.parse().unwrap();
    g.decide(ServiceIdx(service), &c, Some(Family::V4), 0, &mut d);
    (d.pops().iter().map(|&i| g.pop(i).name.clone()).collect(), d.ttl)
}

#[test]
fn states_follow_precedence_and_survive_reloads() {
    let p = Publisher::new(built(""), Overrides::default());
    assert_eq!(decide(&p, 0, "198.51.100.1").0, ["ams"]);
    p.set_override("ams", OverrideAction::Drain, |_| Ok(())).unwrap();
    assert_eq!(decide(&p, 0, "198.51.100.1").0, ["nyc"]);
    assert_eq!(
        p.set_pop_health("nyc", PopState::Degraded, "1 of 2 targets up"),
        Some(3)
    );
    // The same health again publishes nothing.
    assert_eq!(p.set_pop_health("nyc", PopState::Degraded, "1 of 2 targets up"), None);
    // A degraded POP answers with the degraded TTL.
    assert_eq!(decide(&p, 0, "198.51.100.1"), (vec!["nyc".to_string()], 5));
    // A reload keeps overrides and health.
    let id = p.reload(built(""));
    assert_eq!(id, 4);
    let g = p.load();
    assert_eq!(&*g.states, [PopState::Drained, PopState::Degraded, PopState::Up]);
    assert_eq!(&*g.reasons[1], "health checks: 1 of 2 targets up");
    assert_eq!(decide(&p, 0, "198.51.100.1"), (vec!["nyc".to_string()], 5));
}

#[test]
fn overrides_are_persisted_before_they_apply() {
    let p = Publisher::new(built(""), Overrides::default());
    let saved = Mutex::new(None);
    p.set_override("sin", OverrideAction::Drain, |o| {
        *saved.lock().unwrap() = Some(o.clone());
        Ok(())
    })
    .unwrap();
    assert!(saved.lock().unwrap().as_ref().unwrap().drained.contains("sin"));
    // A failed write changes nothing.
    let e = p
        .set_override("ams", OverrideAction::Drain, |_| Err("disk full".into()))
        .unwrap_err();
    assert_eq!(e.to_string(), "disk full");
    assert_eq!(e.blame(), petrel_director::Blame::Internal);
    assert_eq!(&*p.load().states, [PopState::Up, PopState::Up, PopState::Drained]);
    assert!(!p.overrides().drained.contains("ams"));
}

#[test]
fn unknown_names_are_client_errors() {
    let p = Publisher::new(built(""), Overrides::default());
    let e = p.set_override("lhr", OverrideAction::Drain, |_| Ok(())).unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert_eq!(e.to_string(), "unknown POP `lhr`");
    // Targets can be forced, not drained.
    let target = "sin/tcp:192.0.2.30:80";
    assert!(p.set_override(target, OverrideAction::Drain, |_| Ok(())).is_err());
    p.set_override(target, OverrideAction::ForceDown, |_| Ok(())).unwrap();
    assert_eq!(p.forced(target), Some(false));
    let e = p.set_override("nope", OverrideAction::ForceUp, |_| Ok(())).unwrap_err();
    assert_eq!(e.to_string(), "unknown POP or check target `nope`");
    assert_eq!(p.load().id, 2);
}

#[test]
fn subscribers_hear_every_publication_in_order() {
    let p = Publisher::new(built(""), Overrides::default());
    let heard = Arc::new(Mutex::new(Vec::new()));
    let h = heard.clone();
    p.subscribe(move |g, c| h.lock().unwrap().push((g.id, c.id, c.kind, c.pops.clone())));
    p.set_override("nyc", OverrideAction::Drain, |_| Ok(())).unwrap();
    p.set_pop_health("sin", PopState::Down, "0 of 1 targets up");
    p.set_pop_health("sin", PopState::Down, "0 of 1 targets up");
    p.reload(built(""));
    p.set_input(Input::Bgp(views_preferring(2)));
    let heard = heard.lock().unwrap();
    assert_eq!(
        *heard,
        [
            (2, 2, ChangeKind::Overrides, vec![PopIdx(1)]),
            (3, 3, ChangeKind::Health, vec![PopIdx(2)]),
            (4, 4, ChangeKind::Reload, vec![]),
            (5, 5, ChangeKind::Input, vec![]),
        ]
    );
}

#[test]
fn routing_views_recompile_only_bgp_services_and_keep_states() {
    let p = Publisher::new(built(""), Overrides::default());
    // No views: super-sparrow knows nothing, the priority list decides.
    assert_eq!(decide(&p, 1, "10.1.2.3").0, ["sin"]);
    p.set_pop_health("ams", PopState::Degraded, "x");
    let before = p.load_full();
    p.set_input(Input::Bgp(views_preferring(0))).unwrap();
    let after = p.load_full();
    assert_eq!(decide(&p, 1, "10.1.2.3"), (vec!["ams".to_string()], 5));
    assert_eq!(decide(&p, 1, "11.0.0.1").0, ["sin"]);
    // The other service's table and the zones are shared, not rebuilt.
    assert!(Arc::ptr_eq(
        &before.service(ServiceIdx(0)).mapping,
        &after.service(ServiceIdx(0)).mapping
    ));
    assert!(!Arc::ptr_eq(
        &before.service(ServiceIdx(1)).mapping,
        &after.service(ServiceIdx(1)).mapping
    ));
    assert!(Arc::ptr_eq(&before.built.zones, &after.built.zones));
    assert_eq!(after.states, before.states);
}

#[test]
fn a_reload_takes_in_views_published_while_it_was_built() {
    let p = Publisher::new(built(""), Overrides::default());
    // The new config is built before the views arrive (as a slow reload
    // would be) and published after.
    let next = built("\n# changed\n");
    let views = views_preferring(1);
    p.set_input(Input::Bgp(views.clone())).unwrap();
    assert!(next.bgp.is_none());
    p.reload(next);
    let g = p.load();
    assert!(Arc::ptr_eq(g.built.bgp.as_ref().unwrap(), &views));
    assert_eq!(decide(&p, 1, "10.1.2.3").0, ["nyc"]);
}

#[test]
fn views_for_another_pop_list_are_dropped() {
    let p = Publisher::new(built(""), Overrides::default());
    let mut b = BgpDataBuilder::new();
    let mut vb = b.view_builder("lhr", PopIdx(0));
    let id = vb.path_id([64500], 1);
    vb.push("10.0.0.0/8".parse().unwrap(), id);
    vb.finish();
    assert_eq!(p.set_input(Input::Bgp(Arc::new(b.build()))), None);
    assert_eq!(p.load().id, 1);
    // A reload that renumbers POPs drops views that no longer fit.
    p.set_input(Input::Bgp(views_preferring(0))).unwrap();
    let renumbered = BASE.replace("\"ams\"", "\"lhr\"");
    let config = petrel_config::parse(Path::new("t.toml"), &renumbered).unwrap();
    p.reload(build(config, &sources(), None).unwrap());
    assert!(p.load().built.bgp.is_none());
}

#[test]
fn flips_never_wait_for_a_reload_being_built() {
    // The reload's build happens before `reload` is called; meanwhile the
    // publisher takes any number of flips, and the reload keeps them.
    let p = Arc::new(Publisher::new(built(""), Overrides::default()));
    let (tx, rx) = std::sync::mpsc::channel();
    let builder = std::thread::spawn(move || {
        let b = built("");
        rx.recv().unwrap();
        b
    });
    for i in 0..100u32 {
        let st = if i % 2 == 0 { PopState::Down } else { PopState::Up };
        p.set_pop_health("sin", st, "flap");
    }
    p.set_override("ams", OverrideAction::Drain, |_| Ok(())).unwrap();
    tx.send(()).unwrap();
    p.reload(builder.join().unwrap());
    assert_eq!(&*p.load().states, [PopState::Drained, PopState::Up, PopState::Up]);
}

#[test]
fn fallback_and_decision_fields() {
    let p = Publisher::new(built(""), Overrides::default());
    for pop in ["ams", "nyc", "sin"] {
        p.set_override(pop, OverrideAction::Drain, |_| Ok(())).unwrap();
    }
    let g = p.load();
    let mut d = Decision::default();
    g.decide(ServiceIdx(0), &"192.0.2.1".parse().unwrap(), None, 0, &mut d);
    // Every candidate drained: the default fallback answers all of them.
    assert!(d.fallback());
    assert_eq!(d.pops().len(), 3);
    assert_eq!(d.scope(), 0);
}
