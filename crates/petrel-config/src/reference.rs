//! The configuration reference (`docs/CONFIG.md`), generated from the
//! config model: the structs of `raw.rs`, which are what the file may hold,
//! with their doc comments. A test keeps the committed file current and
//! fails when a key has no description.

/// One key of a table.
struct Field {
    key: String,
    ty: String,
    doc: String,
}

/// One struct of the model: a TOML table.
struct Table {
    name: String,
    doc: String,
    fields: Vec<Field>,
}

/// The structs of `raw.rs` with their fields and doc comments.
fn tables(src: &str) -> Vec<Table> {
    let mut out: Vec<Table> = Vec::new();
    let mut doc: Vec<String> = Vec::new();
    let mut rename: Option<String> = None;
    let mut open = false;
    for line in src.lines() {
        let t = line.trim();
        if let Some(d) = t.strip_prefix("///") {
            doc.push(d.strip_prefix(' ').unwrap_or(d).to_string());
            continue;
        }
        if let Some(r) = t.strip_prefix("#[serde(rename = \"") {
            rename = r.split('"').next().map(str::to_string);
            continue;
        }
        if t.starts_with("#[") {
            continue;
        }
        if let Some(name) = line
            .strip_prefix("pub struct ")
            .and_then(|r| r.split_whitespace().next())
        {
            out.push(Table {
                name: name.to_string(),
                doc: doc.join(" "),
                fields: Vec::new(),
            });
            open = true;
        } else if line.starts_with('}') {
            open = false;
        } else if let (true, Some((f, ty))) = (open, t.strip_prefix("pub ").and_then(|f| f.split_once(':'))) {
            let key = rename.take().unwrap_or_else(|| f.to_string());
            if let Some(tb) = out.last_mut() {
                tb.fields.push(Field {
                    key,
                    ty: ty.trim().trim_end_matches(',').to_string(),
                    doc: doc.join(" "),
                });
            }
        }
        doc.clear();
    }
    out
}

/// What a type is called in the reference, and whether the key may be left
/// out.
fn describe(ty: &str) -> (String, bool) {
    let optional = ty.starts_with("Option<") || ty.starts_with("Vec<");
    let inner = ty.strip_prefix("Option<").map_or(ty, |t| &t[..t.len() - 1]);
    let kind = match inner {
        "S<i64>" => "integer",
        "S<f64>" => "number",
        "S<bool>" => "boolean",
        "S<String>" => "string",
        "Vec<S<String>>" | "S<Vec<S<String>>>" => "list of strings",
        "Vec<S<i64>>" => "list of integers",
        "PopList" => "list of POP names",
        "PopMap" | "S<PopMap>" => "table of POP lists",
        other => other,
    };
    (kind.to_string(), optional)
}

/// The struct a field's type holds, if it is one of the model's.
fn nested<'a>(ty: &str, tables: &'a [Table]) -> Option<(&'a Table, bool)> {
    let many = ty.starts_with("Vec<");
    let bare = ty
        .trim_start_matches("Option<")
        .trim_start_matches("Vec<")
        .trim_start_matches("S<")
        .trim_end_matches('>');
    tables.iter().find(|t| t.name == bare).map(|t| (t, many))
}

/// The reference in Markdown, or the keys that have no description.
pub fn reference(src: &str) -> Result<String, Vec<String>> {
    let tables = tables(src);
    let mut missing = Vec::new();
    let mut out = String::from(
        "# Configuration reference\n\n\
         Generated from the config model (`crates/petrel-config/src/raw.rs`) by\n\
         `PETREL_WRITE_CONFIG_MD=1 cargo test -p petrel-config reference`; a test\n\
         fails when it is out of date or a key has no description. Unknown keys are\n\
         errors. `examples/full.toml` shows every key with a value it takes.\n",
    );
    let root = tables.iter().find(|t| t.name == "File").expect("raw.rs defines File");
    section(&tables, root, "", &mut out, &mut missing);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing)
    }
}

fn section(tables: &[Table], t: &Table, path: &str, out: &mut String, missing: &mut Vec<String>) {
    use std::fmt::Write;
    let plain: Vec<&Field> = t.fields.iter().filter(|f| nested(&f.ty, tables).is_none()).collect();
    if !plain.is_empty() {
        out.push_str("\n| key | type | description |\n|---|---|---|\n");
        for f in plain {
            let (kind, optional) = describe(&f.ty);
            if f.doc.is_empty() {
                missing.push(format!("{}.{}", t.name, f.key));
            }
            let kind = if optional { kind } else { format!("{kind}, required") };
            let _ = writeln!(out, "| `{}` | {kind} | {} |", f.key, f.doc.replace('|', "\\|"));
        }
    }
    for f in &t.fields {
        let Some((sub, many)) = nested(&f.ty, tables) else {
            continue;
        };
        let p = if path.is_empty() {
            f.key.clone()
        } else {
            format!("{path}.{}", f.key)
        };
        let heading = if many { format!("[[{p}]]") } else { format!("[{p}]") };
        let _ = writeln!(out, "\n## `{heading}`\n");
        if f.doc.is_empty() && sub.doc.is_empty() {
            missing.push(format!("{}.{}", t.name, f.key));
        }
        for d in [&f.doc, &sub.doc] {
            if !d.is_empty() {
                let _ = writeln!(out, "{d}");
            }
        }
        section(tables, sub, &p, out, missing);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_is_current_and_describes_every_key() {
        let doc = match reference(include_str!("raw.rs")) {
            Ok(d) => d,
            Err(missing) => panic!("keys without a description in raw.rs: {missing:?}"),
        };
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/CONFIG.md");
        if std::env::var_os("PETREL_WRITE_CONFIG_MD").is_some() {
            std::fs::write(path, &doc).expect("docs/CONFIG.md is writable");
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == doc,
            "docs/CONFIG.md is out of date: run PETREL_WRITE_CONFIG_MD=1 cargo test -p petrel-config reference"
        );
        // Every key of the model has its row or section.
        for t in tables(include_str!("raw.rs")) {
            for f in &t.fields {
                let k = &f.key;
                assert!(
                    doc.contains(&format!("| `{k}` |"))
                        || doc.contains(&format!("[{k}]"))
                        || doc.contains(&format!(".{k}]")),
                    "{}.{} is not in the reference",
                    t.name,
                    f.key
                );
            }
        }
    }

    #[test]
    fn nested_tables_become_sections_with_their_paths() {
        let src = "/// Top.\npub struct File {\n    /// The server.\n    pub server: Option<S<Server>>,\n    /// POPs.\n    pub pop: Vec<S<Pop>>,\n}\n\
                   pub struct Server {\n    /// Where to listen.\n    pub dns: Option<Vec<S<String>>>,\n    pub rrl: Option<S<Rrl>>,\n}\n\
                   /// Rate limiting.\npub struct Rrl {\n    #[serde(rename = \"type\")]\n    /// Its kind.\n    pub kind: S<String>,\n}\n\
                   pub struct Pop {\n    pub name: S<String>,\n}\n";
        let missing = reference(src).unwrap_err();
        assert_eq!(missing, ["Pop.name"]);
        let ok = src.replace(
            "    pub name: S<String>,",
            "    /// Its name.\n    pub name: S<String>,",
        );
        let doc = reference(&ok).unwrap();
        assert!(doc.contains("## `[server]`"), "{doc}");
        assert!(doc.contains("## `[server.rrl]`\n\nRate limiting."), "{doc}");
        assert!(doc.contains("| `type` | string, required | Its kind. |"), "{doc}");
        assert!(doc.contains("## `[[pop]]`"), "{doc}");
        assert!(doc.contains("| `dns` | list of strings | Where to listen. |"), "{doc}");
    }
}
