//! Redirect URL templates: `https://{pop}.cdn.example.net{path}{?query}`.
//!
//! Placeholders: `{pop}` (the chosen POP's name), `{host}` (the request's
//! host, port removed), `{path}` (the request's path), `{query}` (its query
//! string, without `?`), `{?query}` (`?` and the query string, or nothing
//! when there is none). `{{` and `}}` are literal braces. A template is
//! parsed once (at config load) and rendered into a reused buffer.

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Lit(String),
    Pop,
    Host,
    Path,
    Query,
    OptQuery,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// What a template is filled from.
#[derive(Clone, Copy, Debug)]
pub struct Vars<'a> {
    pub pop: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    /// Without `?`; None or empty: no query.
    pub query: Option<&'a str>,
    /// A `name=value` pair added to the query (the edge's marker).
    pub extra_query: Option<&'a str>,
}

impl Template {
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        while let Some(c) = rest.chars().next() {
            if rest.starts_with("{{") || rest.starts_with("}}") {
                lit.push(c);
                rest = &rest[2..];
                continue;
            }
            if c == '}' {
                return Err(format!("`{s}`: a lone `}}` (write `}}}}` for a brace)"));
            }
            if c != '{' {
                lit.push(c);
                rest = &rest[c.len_utf8()..];
                continue;
            }
            let end = rest.find('}').ok_or_else(|| format!("`{s}`: `{{` without `}}`"))?;
            let part = match &rest[1..end] {
                "pop" => Part::Pop,
                "host" => Part::Host,
                "path" => Part::Path,
                "query" => Part::Query,
                "?query" => Part::OptQuery,
                other => {
                    return Err(format!(
                        "`{s}`: unknown placeholder `{{{other}}}` (expected {{pop}}, {{host}}, {{path}}, {{query}} or {{?query}})"
                    ))
                }
            };
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            parts.push(part);
            rest = &rest[end + 1..];
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        if !parts.contains(&Part::Pop) {
            return Err(format!("`{s}` does not name the POP ({{pop}})"));
        }
        let head = match parts.first() {
            Some(Part::Lit(l)) => l.to_ascii_lowercase(),
            _ => String::new(),
        };
        if !(head.starts_with("https://") || head.starts_with("http://") || head.starts_with('/')) {
            return Err(format!("`{s}` must start with https://, http:// or /"));
        }
        Ok(Template { parts })
    }

    /// Whether the template carries the request's query itself.
    fn has_query(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Query | Part::OptQuery))
    }

    /// Append the URL to `out`. `extra_query` is added to the query the
    /// template carries, or as a query of its own at the end.
    pub fn render(&self, v: &Vars<'_>, out: &mut String) {
        let start = out.len();
        let query = v.query.filter(|q| !q.is_empty());
        let mut extra_done = false;
        for p in &self.parts {
            match p {
                Part::Lit(l) => out.push_str(l),
                Part::Pop => out.push_str(v.pop),
                Part::Host => out.push_str(crate::rules::strip_port(v.host)),
                Part::Path => out.push_str(v.path),
                Part::Query | Part::OptQuery => {
                    let mut first = true;
                    for q in [query, v.extra_query].into_iter().flatten() {
                        if first && matches!(p, Part::OptQuery) {
                            out.push('?');
                        } else if !first {
                            out.push('&');
                        }
                        out.push_str(q);
                        first = false;
                    }
                    extra_done = true;
                }
            }
        }
        if let (Some(x), false) = (v.extra_query, extra_done || self.has_query()) {
            out.push(if out[start..].contains('?') { '&' } else { '?' });
            out.push_str(x);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(query: Option<&'a str>, extra: Option<&'a str>) -> Vars<'a> {
        Vars {
            pop: "ams",
            host: "cdn.example.net:8080",
            path: "/v/a.mp4",
            query,
            extra_query: extra,
        }
    }

    fn render(t: &str, v: &Vars<'_>) -> String {
        let mut s = String::new();
        Template::parse(t).unwrap().render(v, &mut s);
        s
    }

    #[test]
    fn placeholders_are_filled_and_the_query_kept() {
        let t = "https://{pop}.cdn.example.net{path}{?query}";
        assert_eq!(render(t, &vars(None, None)), "https://ams.cdn.example.net/v/a.mp4");
        assert_eq!(render(t, &vars(Some(""), None)), "https://ams.cdn.example.net/v/a.mp4");
        assert_eq!(
            render(t, &vars(Some("t=1&u=2"), None)),
            "https://ams.cdn.example.net/v/a.mp4?t=1&u=2"
        );
        assert_eq!(
            render("https://{host}/{pop}{path}?x=1&{query}", &vars(Some("t=1"), None)),
            "https://cdn.example.net/ams/v/a.mp4?x=1&t=1"
        );
        assert_eq!(
            render("https://{pop}.example.net/{{raw}}", &vars(None, None)),
            "https://ams.example.net/{raw}"
        );
    }

    #[test]
    fn the_marker_joins_the_query() {
        let t = "https://{pop}.cdn.example.net{path}{?query}";
        assert_eq!(
            render(t, &vars(None, Some("petrel=1"))),
            "https://ams.cdn.example.net/v/a.mp4?petrel=1"
        );
        assert_eq!(
            render(t, &vars(Some("t=1"), Some("petrel=1"))),
            "https://ams.cdn.example.net/v/a.mp4?t=1&petrel=1"
        );
        // A template without the query gets the marker at its end.
        assert_eq!(
            render("https://{pop}.example.net/", &vars(Some("t=1"), Some("petrel=1"))),
            "https://ams.example.net/?petrel=1"
        );
        assert_eq!(
            render("https://{pop}.example.net/?a=b", &vars(None, Some("petrel=1"))),
            "https://ams.example.net/?a=b&petrel=1"
        );
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        for (t, why) in [
            ("https://cdn.example.net{path}", "does not name the POP"),
            ("https://{pop}.example.net{nope}", "unknown placeholder `{nope}`"),
            ("https://{pop.example.net", "without"),
            ("https://{pop}}.x", "lone"),
            ("ftp://{pop}.example.net", "must start with"),
        ] {
            let e = Template::parse(t).unwrap_err();
            assert!(e.contains(why), "{t}: {e}");
        }
    }
}
