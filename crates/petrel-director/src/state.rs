//! What a POP may be used for, and why: the precedence of operator
//! overrides, the configured state and health, and the health judgement of
//! a POP from its check targets.

use petrel_config::Pop;
use petrel_health::{pop_up, TargetState};
use petrel_types::PopState;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Operator overrides that outlive reloads (and, with a state file,
/// restarts). Kept by name, not index: a reload may reorder POPs.
/// `forced_up`/`forced_down` name POPs or health-check targets.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Overrides {
    #[serde(default)]
    pub drained: BTreeSet<String>,
    #[serde(default)]
    pub forced_up: BTreeSet<String>,
    #[serde(default)]
    pub forced_down: BTreeSet<String>,
}

impl Overrides {
    /// The state an operator forced on a POP or target, if any.
    pub fn forced(&self, name: &str) -> Option<bool> {
        if self.forced_down.contains(name) {
            Some(false)
        } else if self.forced_up.contains(name) {
            Some(true)
        } else {
            None
        }
    }

    /// These overrides with one action applied.
    pub fn with(&self, name: &str, action: OverrideAction) -> Overrides {
        let mut next = self.clone();
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
        next
    }

    /// The state file's form (JSON).
    pub fn to_text(&self) -> String {
        serde_json::to_string_pretty(self).expect("sets of strings serialise") + "\n"
    }

    pub fn from_text(text: &str) -> Result<Overrides, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OverrideAction {
    Drain,
    Undrain,
    ForceUp,
    ForceDown,
    Clear,
}

impl OverrideAction {
    pub fn as_str(self) -> &'static str {
        match self {
            OverrideAction::Drain => "drain",
            OverrideAction::Undrain => "undrain",
            OverrideAction::ForceUp => "force-up",
            OverrideAction::ForceDown => "force-down",
            OverrideAction::Clear => "clear",
        }
    }

    /// Drain and undrain apply to POPs only; forces also to check targets.
    pub fn pops_only(self) -> bool {
        matches!(self, OverrideAction::Drain | OverrideAction::Undrain)
    }
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

/// Everything besides the config that decides POP states.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StateInputs {
    pub overrides: Overrides,
    /// POPs whose health checks say down or degraded, with why (by name).
    pub health: BTreeMap<String, (PopState, String)>,
}

impl StateInputs {
    /// Record what the health checks say of a POP; false if nothing changed.
    pub fn set_health(&mut self, pop: &str, state: PopState, why: &str) -> bool {
        if state == PopState::Up {
            self.health.remove(pop).is_some()
        } else {
            let new = (state, why.to_string());
            self.health.insert(pop.to_string(), new.clone()) != Some(new)
        }
    }
}

/// Per-POP states of a generation, with why each POP has its state.
#[derive(Clone, Debug, PartialEq)]
pub struct PopStates {
    pub states: Arc<[PopState]>,
    pub reasons: Arc<[String]>,
}

/// The precedence: an operator's drain wins, then an operator's force, then
/// the configured state, then health; a POP nothing is said of is up.
pub fn pop_states(pops: &[Pop], inputs: &StateInputs) -> PopStates {
    let o = &inputs.overrides;
    let (states, reasons): (Vec<PopState>, Vec<String>) = pops
        .iter()
        .map(|p| {
            if o.drained.contains(&p.name) {
                (PopState::Drained, "drained by an operator".to_string())
            } else if o.forced(&p.name) == Some(false) {
                (PopState::Down, "forced down by an operator".to_string())
            } else if o.forced(&p.name) == Some(true) {
                (PopState::Up, "forced up by an operator (health ignored)".to_string())
            } else if p.state != PopState::Up {
                (p.state, format!("{} in the config", p.state.as_str()))
            } else if let Some((st, why)) = inputs.health.get(&p.name) {
                (*st, format!("health checks: {why}"))
            } else {
                (PopState::Up, String::new())
            }
        })
        .unzip();
    PopStates {
        states: states.into(),
        reasons: reasons.into(),
    }
}

/// A health-check target's state as a POP's judgement sees it: an
/// operator's force wins over what its probes say.
pub fn target_state(overrides: &Overrides, name: &str, probed: TargetState) -> TargetState {
    match overrides.forced(name) {
        Some(true) => TargetState::Up,
        Some(false) => TargetState::Down,
        None => probed,
    }
}

/// A POP's health from its targets' states (each as an operator forced it
/// or as its hysteresis says, see [`target_state`]): down unless `up_thresh` of them are up,
/// degraded below `degraded_below`; with a reason for explanations.
pub fn judge_pop(
    targets: impl IntoIterator<Item = TargetState>,
    up_thresh: f64,
    degraded_below: Option<f64>,
) -> (PopState, String) {
    let states: Vec<TargetState> = targets.into_iter().collect();
    let n = states.len();
    let up_n = states.iter().filter(|&&s| s == TargetState::Up).count();
    let why = format!("{up_n} of {n} targets up, {:.0}% needed", up_thresh * 100.0);
    let state = if !pop_up(states, up_thresh) {
        PopState::Down
    } else if degraded_below.is_some_and(|d| n > 0 && (up_n as f64) < d * n as f64 - 1e-9) {
        PopState::Degraded
    } else {
        PopState::Up
    };
    (state, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pop(name: &str, state: PopState) -> Pop {
        Pop {
            name: name.into(),
            ipv4: vec![],
            ipv6: vec![],
            location: None,
            asns: vec![],
            weight: 100,
            capacity: None,
            state,
            up_thresh: 0.5,
            degraded_below: None,
            checks: vec![],
        }
    }

    fn states(pops: &[Pop], i: &StateInputs) -> Vec<PopState> {
        pop_states(pops, i).states.to_vec()
    }

    #[test]
    fn drain_beats_force_beats_config_beats_health() {
        let pops = [pop("a", PopState::Up), pop("b", PopState::Down)];
        let mut i = StateInputs::default();
        assert_eq!(states(&pops, &i), [PopState::Up, PopState::Down]);
        // Health says a is down, b degraded: the configured Down of b wins.
        i.set_health("a", PopState::Down, "0 of 1 targets up");
        i.set_health("b", PopState::Degraded, "1 of 2 targets up");
        assert_eq!(states(&pops, &i), [PopState::Down, PopState::Down]);
        // A force beats both the config and health.
        i.overrides = i
            .overrides
            .with("a", OverrideAction::ForceUp)
            .with("b", OverrideAction::ForceUp);
        assert_eq!(states(&pops, &i), [PopState::Up, PopState::Up]);
        // A drain beats a force.
        i.overrides = i.overrides.with("a", OverrideAction::Drain);
        assert_eq!(states(&pops, &i), [PopState::Drained, PopState::Up]);
        let r = pop_states(&pops, &i);
        assert_eq!(&*r.reasons[0], "drained by an operator");
        assert_eq!(&*r.reasons[1], "forced up by an operator (health ignored)");
        // Undrain and clear give health its say again.
        i.overrides = i
            .overrides
            .with("a", OverrideAction::Undrain)
            .with("a", OverrideAction::Clear)
            .with("b", OverrideAction::Clear);
        assert_eq!(states(&pops, &i), [PopState::Down, PopState::Down]);
        assert_eq!(&*pop_states(&pops, &i).reasons[0], "health checks: 0 of 1 targets up");
    }

    #[test]
    fn force_down_replaces_force_up() {
        let o = Overrides::default()
            .with("x", OverrideAction::ForceUp)
            .with("x", OverrideAction::ForceDown);
        assert_eq!(o.forced("x"), Some(false));
        assert!(o.forced_up.is_empty());
        assert_eq!(o.with("x", OverrideAction::Clear).forced("x"), None);
    }

    #[test]
    fn health_changes_are_reported_once() {
        let mut i = StateInputs::default();
        assert!(!i.set_health("a", PopState::Up, ""));
        assert!(i.set_health("a", PopState::Down, "x"));
        assert!(!i.set_health("a", PopState::Down, "x"));
        assert!(i.set_health("a", PopState::Down, "y"));
        assert!(i.set_health("a", PopState::Up, ""));
        assert!(i.health.is_empty());
    }

    #[test]
    fn state_file_round_trip() {
        let o = Overrides::default()
            .with("ams", OverrideAction::Drain)
            .with("ams/tcp:192.0.2.1:80", OverrideAction::ForceDown);
        assert_eq!(Overrides::from_text(&o.to_text()).unwrap(), o);
        // Older files may lack fields.
        assert_eq!(Overrides::from_text("{}").unwrap(), Overrides::default());
        assert!(Overrides::from_text("{\"drained\": 3}").is_err());
    }

    #[test]
    fn a_force_on_a_target_wins_over_its_probes() {
        use TargetState::{Down, Up};
        let t = "ams/tcp:192.0.2.1:80";
        let o = Overrides::default();
        assert_eq!(target_state(&o, t, Down), Down);
        let o = o.with(t, OverrideAction::ForceUp);
        assert_eq!(target_state(&o, t, Down), Up);
        assert_eq!(target_state(&o, "ams/tcp:192.0.2.2:80", Down), Down);
        let o = o.with(t, OverrideAction::ForceDown);
        assert_eq!(target_state(&o, t, Up), Down);
        assert_eq!(target_state(&o.with(t, OverrideAction::Clear), t, Up), Up);
    }

    #[test]
    fn judge_pop_thresholds() {
        use TargetState::{Down, Up};
        assert_eq!(judge_pop([Up, Up], 0.5, None).0, PopState::Up);
        assert_eq!(judge_pop([Up, Down], 0.5, None).0, PopState::Up);
        assert_eq!(judge_pop([Down, Down], 0.5, None).0, PopState::Down);
        assert_eq!(judge_pop([Up, Down, Down], 0.5, None).0, PopState::Down);
        // Degraded: up, but fewer than 3/4 of the targets.
        assert_eq!(judge_pop([Up, Up, Up, Down], 0.5, Some(0.75)).0, PopState::Up);
        assert_eq!(judge_pop([Up, Up, Down, Down], 0.5, Some(0.75)).0, PopState::Degraded);
        let (_, why) = judge_pop([Up, Down], 0.5, None);
        assert_eq!(why, "1 of 2 targets up, 50% needed");
    }
}
