//! The RUM tag a site includes (`/rum.js`): a few KB of our own
//! JavaScript with the settings of `[measure.rum]` written in, so that the
//! sampling rate, the POPs and their beacon URLs come from the config and
//! not from the page.

use serde::Serialize;

const TEMPLATE: &str = include_str!("../assets/rum.js");

/// What the tag is told.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TagConfig {
    /// The share of page views that measure (0-100).
    pub sample: f64,
    /// The POPs to measure, by name.
    pub pops: Vec<String>,
    /// Each POP's beacon object: `{pop}` is replaced by the POP's name.
    pub url: String,
    /// Where beacons are posted.
    pub collector: String,
    /// Resolver discovery: a URL whose host is `{id}.` and a name the DNS
    /// side answers and logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub whoami: Option<String>,
}

/// The tag, ready to serve.
pub fn script(c: &TagConfig) -> String {
    // JSON is a JavaScript expression; `<` is escaped so that the tag
    // stays safe even when inlined in a page.
    let json = serde_json::to_string(c)
        .unwrap_or_else(|_| "{}".into())
        .replace('<', "\\u003c");
    TEMPLATE.replace("/*CONFIG*/", &json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_carries_the_config_and_stays_small() {
        let c = TagConfig {
            sample: 25.0,
            pops: vec!["ams".into(), "iad".into()],
            url: "https://{pop}.rum.example.net/rum/o".into(),
            collector: "/rum/beacon".into(),
            whoami: None,
        };
        let js = script(&c);
        assert!(js.contains(
            r#"({"sample":25.0,"pops":["ams","iad"],"url":"https://{pop}.rum.example.net/rum/o","collector":"/rum/beacon"});"#
        ), "{js}");
        assert!(!js.contains("/*CONFIG*/"));
        assert!(js.len() < 4096, "a few KB: {}", js.len());
        let evil = TagConfig {
            pops: vec!["</script><script>alert(1)</script>".into()],
            ..c
        };
        assert!(!script(&evil).contains("</script>"));
    }
}
