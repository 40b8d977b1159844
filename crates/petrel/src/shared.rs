//! State shared by the data plane, the admin API and the control loop.

use crate::generation::{self, Compiled, Generation, Overrides, PopInputs};
use crate::metrics::Metrics;
use arc_swap::ArcSwap;
use petrel_types::PopState;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

#[derive(Clone, Debug, serde::Serialize)]
pub struct ReloadStatus {
    pub ok: bool,
    pub at_unix: u64,
    pub generation: u64,
    pub errors: Vec<String>,
}

pub struct Shared {
    /// The one snapshot every reader loads; swapped whole.
    pub gen: ArcSwap<Generation>,
    pub metrics: Metrics,
    inputs: Mutex<PopInputs>,
    pub health: crate::health::HealthBoard,
    // Serialises writers (reload, drain) so that no update is lost.
    writer: Mutex<()>,
    pub last_reload: Mutex<Option<ReloadStatus>>,
    pub config_path: PathBuf,
    next_id: AtomicU64,
    /// Sessions and views, once started.
    pub bgp: OnceLock<crate::bgp::BgpHandle>,
    /// Wakes the BGP manager after a reload.
    pub bgp_reconfigure: tokio::sync::Notify,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Shared {
    pub fn new(config_path: &Path, compiled: Compiled) -> Result<Arc<Shared>, String> {
        let overrides = match &compiled.config.server.state_file {
            Some(f) => read_overrides(f)?,
            None => Overrides::default(),
        };
        let metrics = Metrics::default();
        let inputs = PopInputs {
            overrides,
            health: Default::default(),
        };
        let gen = Generation::new(1, Arc::new(compiled), &inputs, &metrics);
        Ok(Arc::new(Shared {
            gen: ArcSwap::from_pointee(gen),
            metrics,
            inputs: Mutex::new(inputs),
            health: Default::default(),
            writer: Mutex::new(()),
            last_reload: Mutex::new(None),
            config_path: config_path.to_path_buf(),
            next_id: AtomicU64::new(2),
            bgp: OnceLock::new(),
            bgp_reconfigure: tokio::sync::Notify::new(),
        }))
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Re-read the config; on any error the serving generation stays.
    /// Blocking: run it off the data path.
    pub fn reload(&self) -> Result<u64, Vec<String>> {
        let _w = self.writer.lock().expect("writer lock");
        let result = generation::load_config(&self.config_path).and_then(|config| {
            // Routing views carry POP indexes: keep them only while the POP
            // list is the same; otherwise the RIB republishes them.
            let old = self.gen.load();
            let same_pops = old
                .config()
                .pops
                .iter()
                .map(|p| &p.name)
                .eq(config.pops.iter().map(|p| &p.name));
            let bgp = if same_pops { old.compiled.bgp.clone() } else { None };
            generation::compile_config(config, bgp)
        });
        let status = match result {
            Ok(compiled) => {
                let old = self.gen.load();
                let mut warnings = Vec::new();
                if old.config().server != compiled.config.server {
                    warnings.push("[server] changed: listeners and limits take effect at the next restart".to_string());
                }
                let inputs = self.inputs.lock().expect("inputs lock").clone();
                let id = self.next_id();
                self.gen.store(Arc::new(Generation::new(
                    id,
                    Arc::new(compiled),
                    &inputs,
                    &self.metrics,
                )));
                // Probes and sessions follow the new config.
                self.health.reconfigure.notify_one();
                self.bgp_reconfigure.notify_one();
                self.metrics.reloads_ok.fetch_add(1, Ordering::Relaxed);
                for w in &warnings {
                    tracing::warn!(warning = %w, "reload");
                }
                tracing::info!(generation = id, "config reloaded");
                ReloadStatus {
                    ok: true,
                    at_unix: unix_now(),
                    generation: id,
                    errors: warnings,
                }
            }
            Err(errors) => {
                self.metrics.reloads_failed.fetch_add(1, Ordering::Relaxed);
                for e in &errors {
                    tracing::error!(error = %e, "reload rejected; the previous generation keeps serving");
                }
                ReloadStatus {
                    ok: false,
                    at_unix: unix_now(),
                    generation: self.gen.load().id,
                    errors,
                }
            }
        };
        let ok = status.ok;
        let id = status.generation;
        let errors = status.errors.clone();
        *self.last_reload.lock().expect("status lock") = Some(status);
        if ok {
            Ok(id)
        } else {
            Err(errors)
        }
    }

    /// Apply an operator override to a POP (or, for the force actions, a
    /// health-check target): at once for new decisions, and persisted when
    /// the config names a state file.
    pub fn set_override(&self, name: &str, action: OverrideAction) -> Result<u64, String> {
        let _w = self.writer.lock().expect("writer lock");
        let g = self.gen.load();
        let is_pop = g.config().pops.iter().any(|p| p.name == name);
        let is_target = g.config().pops.iter().flat_map(|p| &p.checks).any(|c| c.name == name);
        match action {
            OverrideAction::Drain | OverrideAction::Undrain if !is_pop => return Err(format!("unknown POP `{name}`")),
            _ if !is_pop && !is_target => return Err(format!("unknown POP or check target `{name}`")),
            _ => {}
        }
        let mut inputs = self.inputs.lock().expect("inputs lock");
        let mut next = inputs.overrides.clone();
        let n = name.to_string();
        match action {
            OverrideAction::Drain => {
                next.drained.insert(n);
            }
            OverrideAction::Undrain => {
                next.drained.remove(name);
            }
            OverrideAction::ForceUp => {
                next.forced_down.remove(name);
                next.forced_up.insert(n);
            }
            OverrideAction::ForceDown => {
                next.forced_up.remove(name);
                next.forced_down.insert(n);
            }
            OverrideAction::Clear => {
                next.forced_up.remove(name);
                next.forced_down.remove(name);
            }
        }
        if let Some(f) = &g.config().server.state_file {
            write_overrides(f, &next)?;
        }
        inputs.overrides = next;
        let id = self.next_id();
        self.gen.store(Arc::new(g.with_inputs(id, &inputs)));
        if is_target {
            // The health supervisor recomputes POP states with the override.
            self.health.reconfigure.notify_one();
        }
        tracing::info!(name, action = ?action, generation = id, "operator override");
        Ok(id)
    }

    /// What an operator forced on a POP or target, if anything.
    pub fn forced(&self, name: &str) -> Option<bool> {
        self.inputs.lock().expect("inputs lock").overrides.forced(name)
    }

    /// What the health checks say of a POP (Up, Degraded or Down, and why);
    /// a new generation only when that changes anything. Cheap: tables are
    /// shared, only states are rebuilt.
    pub fn set_pop_health(&self, pop: &str, state: PopState, why: &str) -> Option<u64> {
        let _w = self.writer.lock().expect("writer lock");
        let mut inputs = self.inputs.lock().expect("inputs lock");
        let changed = if state == PopState::Up {
            inputs.health.remove(pop).is_some()
        } else {
            let new = (state, why.to_string());
            inputs.health.insert(pop.to_string(), new.clone()) != Some(new)
        };
        if !changed {
            return None;
        }
        let g = self.gen.load();
        let id = self.next_id();
        self.gen.store(Arc::new(g.with_inputs(id, &inputs)));
        Some(id)
    }
}

impl Shared {
    /// New routing views: recompile the services that use them and publish.
    /// Views built for another POP list (a reload raced them) are dropped;
    /// the RIB sends fresh ones.
    pub fn set_bgp(&self, data: Arc<petrel_mapping::BgpData>) -> Option<u64> {
        loop {
            // Compile outside the writer lock: a full table takes a few
            // hundred milliseconds, and health flips and drains must not
            // wait for it. Swap only onto the compiled data it was built
            // from; a reload in between means compiling again.
            let base = self.gen.load_full();
            let pops = &base.config().pops;
            if data
                .views
                .iter()
                .any(|v| pops.get(v.pop.index()).is_none_or(|p| p.name != v.name))
            {
                return None;
            }
            let compiled = Arc::new(base.compiled.with_bgp(data.clone()));
            let _w = self.writer.lock().expect("writer lock");
            let g = self.gen.load();
            if !Arc::ptr_eq(&g.compiled.config, &base.compiled.config) {
                continue;
            }
            let id = self.next_id();
            // States come from the generation serving now, not from `base`.
            self.gen.store(Arc::new(g.with_compiled(id, compiled)));
            return Some(id);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverrideAction {
    Drain,
    Undrain,
    ForceUp,
    ForceDown,
    Clear,
}

impl std::str::FromStr for OverrideAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "drain" => OverrideAction::Drain,
            "undrain" => OverrideAction::Undrain,
            "force-up" => OverrideAction::ForceUp,
            "force-down" => OverrideAction::ForceDown,
            "clear" => OverrideAction::Clear,
            o => {
                return Err(format!(
                    "unknown action `{o}`; use drain, undrain, force-up, force-down or clear"
                ))
            }
        })
    }
}

fn read_overrides(path: &Path) -> Result<Overrides, String> {
    match std::fs::read_to_string(path) {
        Ok(t) => serde_json::from_str(&t).map_err(|e| format!("{}: bad state file: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Overrides::default()),
        Err(e) => Err(format!("{}: cannot read state file: {e}", path.display())),
    }
}

fn write_overrides(path: &Path, o: &Overrides) -> Result<(), String> {
    // Write aside and rename, so a crash never leaves half a file.
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_string_pretty(o).map_err(|e| e.to_string())?;
    std::fs::write(&tmp, text + "\n").map_err(|e| format!("{}: cannot write state file: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: cannot write state file: {e}", path.display()))
}
