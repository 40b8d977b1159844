//! Who may talk to the admin API, as pure rules over request headers.
//!
//! The API changes what every client is answered, so a request must come
//! from an operator's tool, not from a web page that an operator's browser
//! happens to run:
//! - `Host` must name the listener as a tool would: an IP literal,
//!   `localhost`, or a name listed in `server.admin_hosts`. A page that
//!   rebinds its own name to 127.0.0.1 (DNS rebinding) sends that name and
//!   is turned away.
//! - `Origin`, which browsers add to cross-site requests and tools do not,
//!   must pass the same test (and `null` never does): a page elsewhere
//!   cannot post a drain (CSRF).
//! - Changes need the bearer token when one is configured (RFC 6750); the
//!   scheme is matched without regard to case (RFC 9110 §11.1).

use std::net::IpAddr;

/// The host part of a `Host` value or of an `Origin`'s authority: without
/// the port, and without the brackets of an IPv6 literal.
fn host_part(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(h, _)| h);
    }
    match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

/// Is `host` (a `Host` header value) one the API answers to?
pub fn host_allowed(host: &str, names: &[String]) -> bool {
    let h = host_part(host.trim());
    h.parse::<IpAddr>().is_ok()
        || h.eq_ignore_ascii_case("localhost")
        || names.iter().any(|n| n.eq_ignore_ascii_case(h))
}

/// Is a request carrying this `Origin` one to serve?
pub fn origin_allowed(origin: &str, names: &[String]) -> bool {
    let o = origin.trim();
    let Some(authority) = o.strip_prefix("http://").or_else(|| o.strip_prefix("https://")) else {
        return false; // "null", or a scheme no tool of ours uses
    };
    let authority = authority.split('/').next().unwrap_or("");
    !authority.is_empty() && host_allowed(authority, names)
}

/// The credentials of an `Authorization: Bearer ...` header.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, cred) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| cred.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_a_tool_uses_pass_and_rebound_names_do_not() {
        let names = vec!["petrel-admin.example.net".to_string()];
        for ok in [
            "127.0.0.1:8053",
            "127.0.0.1",
            "[::1]:8053",
            "[::1]",
            "192.0.2.7:80",
            "localhost:8053",
            "LOCALHOST",
            "petrel-admin.example.net:8053",
        ] {
            assert!(host_allowed(ok, &names), "{ok}");
        }
        for bad in [
            "evil.example:8053",
            "evil.example",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "",
        ] {
            assert!(!host_allowed(bad, &names), "{bad}");
        }
    }

    #[test]
    fn origins_of_other_sites_are_refused() {
        let names: Vec<String> = vec![];
        assert!(origin_allowed("http://127.0.0.1:8053", &names));
        assert!(origin_allowed("http://localhost:8053", &names));
        assert!(origin_allowed("http://[::1]:8053", &names));
        for bad in [
            "http://evil.example",
            "https://evil.example:443",
            "null",
            "file://",
            "http://",
            "",
        ] {
            assert!(!origin_allowed(bad, &names), "{bad}");
        }
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER   abc  "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }
}
