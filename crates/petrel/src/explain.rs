//! `explain` for the CLI and the admin API: one code path for both.

use crate::generation::Compiled;
use petrel_mapping::Explanation;
use petrel_types::{Family, PopState, Prefix};

/// Explain the decision for `client` (an address or a prefix) at `service`.
/// `qtype` picks the address family the answer needs (A, AAAA, or any for
/// CNAME-mode services).
pub fn explain(
    compiled: &Compiled,
    states: &[PopState],
    reasons: &[String],
    service: &str,
    client: &str,
    qtype: Option<&str>,
) -> Result<Explanation, String> {
    let (i, _) = compiled.config.service(service).ok_or_else(|| {
        let names: Vec<&str> = compiled.config.services.iter().map(|s| s.name.as_str()).collect();
        format!("no service `{service}`; services are: {}", names.join(", "))
    })?;
    let prefix = Prefix::parse_lenient(client).map_err(|e| e.to_string())?;
    let svc = &compiled.auth.services[i];
    let qfamily = match qtype.map(|q| q.to_ascii_uppercase()) {
        None => match svc.mode {
            petrel_dns_auth::ServiceMode::Address => Some(if prefix.family() == Family::V6 {
                Family::V6
            } else {
                Family::V4
            }),
            petrel_dns_auth::ServiceMode::Cname(_) => None,
        },
        Some(q) if q == "A" => Some(Family::V4),
        Some(q) if q == "AAAA" => Some(Family::V6),
        Some(q) if q == "ANY" || q == "CNAME" => None,
        Some(q) => return Err(format!("qtype `{q}`: expected A, AAAA or CNAME")),
    };
    let mut e = svc
        .mapping
        .explain(&prefix, qfamily, &compiled.pop_info, states, compiled.geo.as_deref(), 0);
    for c in &mut e.candidates {
        if let Some(k) = compiled.config.pops.iter().position(|p| p.name == c.name) {
            c.reason = reasons.get(k).cloned().unwrap_or_default();
        }
    }
    Ok(e)
}
