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

#[test]
fn services_with_the_same_inputs_share_one_table() {
    let twin = r#"
[[service]]
name = "twin.example.net."
ttl = 10
policy = [{ type = "super-sparrow" }, { type = "priority", pops = ["sin", "nyc", "ams"] }]
"#;
    let p = Publisher::new(built(twin), Overrides::default());
    let shared = |p: &Publisher| {
        let g = p.load_full();
        Arc::ptr_eq(&g.service(ServiceIdx(1)).mapping, &g.service(ServiceIdx(2)).mapping)
    };
    assert!(shared(&p));
    p.set_input(Input::Bgp(views_preferring(1))).unwrap();
    assert!(shared(&p), "recompiled once for both");
    assert_eq!(decide(&p, 2, "10.1.2.3"), (vec!["nyc".to_string()], 10));
    // Each keeps its own name and TTL.
    let e = p.load().explain("twin.example.net", "10.1.2.3", None).unwrap();
    assert_eq!(e.service, "twin.example.net.");
}

#[test]
fn explain_carries_the_facts_as_fields_with_views_in_configuration_order() {
    let p = Publisher::new(built(""), Overrides::default());
    // The RIB made the views in another order than the POPs are configured.
    let mut b = BgpDataBuilder::new();
    for (i, name) in [(2u16, "sin"), (0, "ams"), (1, "nyc")] {
        let mut vb = b.view_builder(name, PopIdx(i));
        let id = vb.path_id([64999, 64502], 2);
        vb.push("10.0.0.0/8".parse().unwrap(), id);
        vb.finish();
    }
    p.set_input(Input::Bgp(Arc::new(b.build()))).unwrap();
    let e = p.load().explain("bgp.example.net", "10.1.2.3", None).unwrap();
    let v = serde_json::to_value(&e).unwrap();
    let f = &v["steps"][0]["facts"];
    assert_eq!(f["kind"], "routing", "{v:#}");
    let views: Vec<&str> = f["views"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["view"].as_str().unwrap())
        .collect();
    assert_eq!(views, ["ams", "nyc", "sin"]);
    assert_eq!(f["views"][0]["as_path"], serde_json::json!([64999, 64502]));
    assert_eq!(f["views"][0]["path_length"], 2);
    assert_eq!(f["hops"][0]["pop"], "sin", "{f:#}");
    assert_eq!(v["steps"][1]["facts"]["kind"], "order");
    assert_eq!(v["answer"], serde_json::json!(["sin"]));
    assert_eq!(v["decided_by"]["step"], 1);
    assert_eq!(v["decided_by"]["policy"], "super-sparrow");
    assert!(e.consistent);
    // The text names the views in the same order.
    let t = e.to_text();
    let (a, n) = (t.find("view ams").unwrap(), t.find("view nyc").unwrap());
    assert!(a < n && n < t.find("view sin").unwrap(), "{t}");
    assert!(t.contains("decided by step 1 (super-sparrow)"), "{t}");
    // A client no view covers: the priority list decides.
    let e = p.load().explain("bgp.example.net", "192.0.2.1", None).unwrap();
    let v = serde_json::to_value(&e).unwrap();
    assert_eq!(v["steps"][0]["facts"]["views"][0]["as_path"], serde_json::Value::Null);
    assert_eq!(v["decided_by"]["policy"], "priority");
}

mod model {
    use super::*;
    use petrel_director::state::pop_states;
    use petrel_director::StateInputs;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Override(usize, usize),
        Health(usize, usize),
        Reload,
    }

    const NAMES: [&str; 5] = ["ams", "nyc", "sin", "sin/tcp:192.0.2.30:80", "lhr"];
    const ACTIONS: [OverrideAction; 5] = [
        OverrideAction::Drain,
        OverrideAction::Undrain,
        OverrideAction::ForceUp,
        OverrideAction::ForceDown,
        OverrideAction::Clear,
    ];
    const HEALTH: [PopState; 3] = [PopState::Up, PopState::Degraded, PopState::Down];

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..NAMES.len(), 0..ACTIONS.len()).prop_map(|(n, a)| Op::Override(n, a)),
            (0..3usize, 0..HEALTH.len()).prop_map(|(p, h)| Op::Health(p, h)),
            Just(Op::Reload),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Whatever the order of overrides, health reports and reloads, the
        /// serving states are the precedence rule applied to everything
        /// accepted so far, and every publication is heard once, in order.
        #[test]
        fn states_match_a_model_of_accepted_inputs(ops in proptest::collection::vec(op(), 1..40)) {
            let p = Publisher::new(built(""), Overrides::default());
            let heard = Arc::new(Mutex::new(Vec::new()));
            let h = heard.clone();
            p.subscribe(move |g, _| h.lock().unwrap().push(g.id));
            let mut model = StateInputs::default();
            let mut published = 0;
            for op in ops {
                match op {
                    Op::Override(n, a) => {
                        if p.set_override(NAMES[n], ACTIONS[a], |_| Ok(())).is_ok() {
                            model.overrides = model.overrides.with(NAMES[n], ACTIONS[a]);
                            published += 1;
                        }
                    }
                    Op::Health(i, h) => {
                        let pop = NAMES[i];
                        if p.set_pop_health(pop, HEALTH[h], "model").is_some() {
                            published += 1;
                        }
                        model.set_health(pop, HEALTH[h], "model");
                    }
                    Op::Reload => {
                        p.reload(built(""));
                        published += 1;
                    }
                }
                let g = p.load();
                let want = pop_states(&g.config().pops, &model);
                prop_assert_eq!(&*g.states, &*want.states);
                prop_assert_eq!(&*g.reasons, &*want.reasons);
            }
            let heard = heard.lock().unwrap();
            prop_assert_eq!(heard.len(), published);
            prop_assert!(heard.windows(2).all(|w| w[1] == w[0] + 1));
        }
    }
}

#[test]
fn cidr_map_files_merge_with_inline_entries_and_report_their_lines() {
    let svc = r#"
[[service]]
name = "map.example.net."
ttl = 30
pops = ["ams", "nyc"]
policy = [{ type = "cidr", file = "clients.map" }, { type = "priority", pops = ["nyc", "ams"] }]
[[service]]
name = "inline.example.net."
ttl = 30
policy = [{ type = "cidr", entries = { "10.0.0.0/8" = ["sin"] } }]
"#;
    let config = petrel_config::parse(Path::new("t.toml"), &format!("{BASE}{svc}")).unwrap();
    let mut src = sources();
    src.texts.insert(
        "clients.map".into(),
        Ok("# clients\n198.51.100.0/24 ams\n203.0.113.0/24 nyc,ams\n".into()),
    );
    let p = Publisher::new(build(config.clone(), &src, None).unwrap(), Overrides::default());
    assert_eq!(decide(&p, 2, "198.51.100.7").0, ["ams"]);
    assert_eq!(decide(&p, 2, "192.0.2.1").0, ["nyc"], "no entry: the priority list");
    assert_eq!(decide(&p, 3, "10.9.9.9").0, ["sin"]);
    let e = p.load().explain("map.example.net", "198.51.100.7", None).unwrap();
    assert_eq!(e.steps[0].detail, "clients.map entry 198.51.100.0/24 -> [ams]");
    // A bad line and a POP that is not a candidate, each named; a file
    // that cannot be read names where it was configured.
    let errors = |src: &Sources| -> Vec<String> {
        build(config.clone(), src, None)
            .err()
            .unwrap()
            .iter()
            .map(|e| e.to_string())
            .collect()
    };
    src.texts.insert(
        "clients.map".into(),
        Ok("198.51.100.0/24 ams\nnot-a-prefix ams\n".into()),
    );
    let errs = errors(&src);
    assert_eq!(errs, ["clients.map:2: `not-a-prefix` is not an IP address or prefix"]);
    src.texts
        .insert("clients.map".into(), Ok("203.0.113.0/24 sin\n".into()));
    let errs = errors(&src);
    assert_eq!(
        errs,
        ["clients.map: POP `sin` (for 203.0.113.0/24) is not a candidate of service map.example.net."]
    );
    src.texts.insert(
        "clients.map".into(),
        Err("No such file or directory (os error 2)".into()),
    );
    let errs = build(config, &src, None).err().unwrap();
    assert!(
        errs[0].to_string().starts_with("t.toml:")
            && errs[0]
                .to_string()
                .ends_with("file: clients.map: cannot read: No such file or directory (os error 2)"),
        "{errs:?}"
    );
}

#[test]
fn anycast_prefixes_are_checked_against_the_vrp_file() {
    let text = BASE.replace(
        "[bgp]\n",
        "[bgp]\nasn = 64500\nrouter_id = \"192.0.2.1\"\nowned = [\"192.0.2.0/23\"]\nvrp_file = \"vrps.json\"\n[[bgp.peer]]\nname = \"edge\"\npop = \"ams\"\naddress = \"192.0.2.254\"\nasn = 64510\n",
    ) + "[[anycast]]\nname = \"web\"\npop = \"ams\"\nprefixes = [\"192.0.2.0/24\", \"192.0.3.0/24\"]\nneighbor = [{ peer = \"edge\" }]\n";
    let config = || petrel_config::parse(Path::new("t.toml"), &text).unwrap_or_else(|e| panic!("{e:?}"));
    let mut src = sources();
    // 192.0.3.0/24 belongs to another AS per the ROAs: announcing it from
    // ours would be RPKI-invalid.
    src.texts.insert(
        "vrps.json".into(),
        Ok(
            r#"{"roas": [{"asn": "AS64500", "prefix": "192.0.2.0/24", "maxLength": 24},
                        {"asn": "AS64999", "prefix": "192.0.3.0/24", "maxLength": 24}]}"#
                .into(),
        ),
    );
    let errs = build(config(), &src, None).err().unwrap();
    let said: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].contains("anycast block `web`: 192.0.3.0/24 cannot be announced: RPKI-invalid"),
        "{said:?}"
    );
    // A VRP file that is not what rpki-client or Routinator write.
    src.texts.insert("vrps.json".into(), Ok("[1, 2]".into()));
    let errs = build(config(), &src, None).err().unwrap();
    assert!(
        errs[0]
            .to_string()
            .contains("bgp.vrp_file: vrps.json: no \"roas\" list"),
        "{errs:?}"
    );
    // Valid ROAs for both: built, with the VRPs in the rules.
    src.texts.insert(
        "vrps.json".into(),
        Ok(r#"{"roas": [{"asn": 64500, "prefix": "192.0.2.0/23", "maxLength": 24}]}"#.into()),
    );
    let b = build(config(), &src, None).unwrap();
    assert_eq!(b.safety.as_ref().unwrap().vrps.as_ref().unwrap().len(), 1);
    assert_eq!(b.config.anycast[0].prefixes.len(), 2);
}

#[test]
fn measured_latency_recompiles_latency_services_and_survives_reloads() {
    use petrel_mapping::{LatencyData, LatencyUnit, Measured};
    let extra = "[[service]]\nname = \"rum.example.net.\"\nttl = 30\npolicy = [{ type = \"latency\" }, { type = \"priority\", pops = [\"ams\", \"nyc\", \"sin\"] }]\n[measure]\n";
    let p = Publisher::new(built(extra), Overrides::default());
    assert_eq!(
        decide(&p, 2, "198.51.100.1").0,
        ["ams"],
        "no measurements: the next policy"
    );
    let mut data = LatencyData::default();
    let m = |pop: u16, tier, median_ms| Measured {
        pop: PopIdx(pop),
        tier,
        median_ms,
        low_ms: median_ms - 1.0,
        high_ms: median_ms + 1.0,
        samples: 100.0,
    };
    data.insert(
        "198.51.100.0/24".parse().unwrap(),
        LatencyUnit {
            measured: vec![m(2, 0, 12.0), m(0, 1, 80.0)],
            borrowed_from: None,
        },
    );
    let before = p.load().built.services[0].mapping.clone();
    let id = p.set_input(Input::Latency(Arc::new(data))).unwrap();
    assert_eq!(p.load().id, id);
    assert_eq!(decide(&p, 2, "198.51.100.1").0, ["sin"], "measured: sin is faster");
    assert_eq!(decide(&p, 2, "198.51.101.1").0, ["ams"], "another network: unchanged");
    assert!(
        Arc::ptr_eq(&before, &p.load().built.services[0].mapping),
        "services without a latency policy are not recompiled"
    );
    // A reload with the same POPs keeps the measurements.
    p.reload(built(extra));
    assert_eq!(decide(&p, 2, "198.51.100.1").0, ["sin"]);
}

#[test]
fn a_bgp_only_service_is_withheld_while_the_views_load_and_others_answer() {
    let extra = "[[service]]\nname = \"ss.example.net.\"\npolicy = [{ type = \"super-sparrow\" }]\n";
    let p = Publisher::new(built(extra), Overrides::default());
    let g = p.load_full();
    assert!(g.warming, "a config with routing feeds starts warming");
    assert_eq!(g.config().services[2].warming, petrel_mapping::Warming::Servfail);
    assert_eq!(g.config().services[1].warming, petrel_mapping::Warming::Policies);
    let mut d = Decision::default();
    g.decide(ServiceIdx(2), &"10.1.2.3".parse().unwrap(), Some(Family::V4), 0, &mut d);
    assert!(d.withheld && d.pops().is_empty());
    // Services with something else to go by answer from it.
    assert_eq!(decide(&p, 1, "10.1.2.3").0, ["sin"]);
    assert_eq!(decide(&p, 0, "10.1.2.3").0, ["ams"]);
    let e = g.explain("ss.example.net", "10.1.2.3", None).unwrap();
    assert!(e.answer.is_empty());
    assert!(e.warming.as_deref().unwrap().contains("SERVFAIL"), "{:?}", e.warming);
    // Views and reloads while warming keep it warming: only the RIB says
    // when the views are all in.
    p.set_input(Input::Bgp(views_preferring(0))).unwrap();
    p.reload(built(extra));
    assert!(p.load().warming);
    let heard = Arc::new(Mutex::new(Vec::new()));
    let h = heard.clone();
    p.subscribe(move |g, c| h.lock().unwrap().push((g.warming, c.kind)));
    let id = p.warmed().expect("a new generation");
    assert_eq!(p.warmed(), None, "once");
    assert_eq!(*heard.lock().unwrap(), [(false, ChangeKind::Input)]);
    assert_eq!(p.load().id, id);
    assert_eq!(decide(&p, 2, "10.1.2.3").0, ["ams"]);
    assert!(p
        .load()
        .explain("ss.example.net", "10.1.2.3", None)
        .unwrap()
        .warming
        .is_none());
}

#[test]
fn a_config_without_routing_feeds_never_warms() {
    let text = BASE
        .replace("[bgp]\n[[bgp.mrt]]\nfile = \"ams.mrt\"\npop = \"ams\"\n", "")
        .replace("{ type = \"super-sparrow\" }, ", "");
    let config = petrel_config::parse(Path::new("t.toml"), &text).unwrap_or_else(|e| panic!("{e:?}"));
    let p = Publisher::new(build(config, &sources(), None).unwrap(), Overrides::default());
    assert!(!p.load().warming);
    assert_eq!(p.warmed(), None);
}
