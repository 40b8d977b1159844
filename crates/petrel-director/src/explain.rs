//! Why a decision was made: the build-side evaluation rerun for one client
//! with a trace, next to what [`Generation::decide`] answers.

use crate::error::DirectorError;
use crate::generation::Generation;
use petrel_mapping::Explanation;
use petrel_types::{Family, Prefix};

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
        Ok(e)
    }
}
