//! Why a decision was made: the build-side evaluation rerun for one client
//! with a trace, next to what [`Generation::decide`] answers.

use crate::error::DirectorError;
use crate::generation::Generation;
use petrel_mapping::{Explanation, HttpUse};
use petrel_types::{Family, Prefix, ServiceIdx};

impl Generation {
    /// Explain the decision for `client` (an address or a prefix) at
    /// `service`. `qtype` picks the address family the answer needs: A,
    /// AAAA, or CNAME/ANY for any; by default the client's family, or any
    /// for a CNAME-mode service.
    pub fn explain(&self, service: &str, client: &str, qtype: Option<&str>) -> Result<Explanation, DirectorError> {
        let si = self
            .built
            .service_index(service)
            .ok_or_else(|| DirectorError::UnknownService {
                name: service.to_string(),
                known: self
                    .services()
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let prefix = Prefix::parse_lenient(client).map_err(|e| DirectorError::BadRequest(e.to_string()))?;
        let svc = self.service(si);
        let qfamily = match qtype.map(|q| q.to_ascii_uppercase()) {
            None if svc.cname_targets.is_some() => None,
            None => Some(prefix.family()),
            Some(q) if q == "A" => Some(Family::V4),
            Some(q) if q == "AAAA" => Some(Family::V6),
            Some(q) if q == "ANY" || q == "CNAME" => None,
            Some(q) => {
                return Err(DirectorError::BadRequest(format!(
                    "qtype `{q}`: expected A, AAAA or CNAME"
                )))
            }
        };
        let b = &self.built;
        let mut e = svc
            .mapping
            .explain(&prefix, qfamily, &b.pops, &self.states, b.geo.as_deref(), 0);
        // The table may be shared with services of the same inputs.
        e.service = svc.name.clone();
        for c in &mut e.candidates {
            if let Some(k) = b.pops.iter().position(|p| p.name == c.name) {
                c.reason = self.reasons.get(k).cloned().unwrap_or_default();
            }
        }
        if self.warming && svc.mapping.spec.uses_bgp() {
            if svc.mapping.spec.withheld_while_warming() {
                e.answer.clear();
                e.decided_by = None;
                e.warming = Some(
                    "the routing views are loading: SERVFAIL (EDE Not Ready) until they are in (service.warming = \"servfail\")"
                        .into(),
                );
            } else {
                e.warming = Some(
                    "the routing views are loading: the BGP policies rank without them until they are in (service.warming = \"policies\")"
                        .into(),
                );
            }
        }
        e.http = self.http_uses(si, &prefix);
        Ok(e)
    }

    /// What each HTTP rule serving the service does for `client` (an
    /// address; for a prefix, its first address).
    fn http_uses(&self, service: ServiceIdx, client: &Prefix) -> Vec<HttpUse> {
        use petrel_http::rules::Action;
        let mut d = crate::Decision::default();
        self.decide_address(service, client.addr(), &mut d);
        let pop = d.pops().first().map(|p| self.config().pops[p.index()].name.as_str());
        let mut out = Vec::new();
        for front in &self.config().http {
            for rule in &front.rules {
                let (r, threshold) = match &rule.action {
                    Action::Redirect(r) => (r, None),
                    Action::Edge {
                        redirect,
                        rtt_threshold_ms,
                        ..
                    } => (redirect, Some(*rtt_threshold_ms)),
                };
                if r.service != service {
                    continue;
                }
                let location = pop.map(|pop| {
                    let mut l = String::new();
                    r.location.render(
                        &petrel_http::template::Vars {
                            pop,
                            host: "{host}",
                            path: "{path}",
                            query: None,
                            extra_query: None,
                        },
                        &mut l,
                    );
                    l
                });
                out.push(HttpUse {
                    front: front.name.to_string(),
                    rule: rule.name.clone(),
                    action: if threshold.is_some() { "edge" } else { "redirect" }.into(),
                    pop: pop.map(str::to_string),
                    location,
                    status: r.status,
                    rtt_threshold_ms: threshold,
                });
            }
        }
        out
    }
}
