//! Reading what a config names: the config itself, zone files, CIDR maps,
//! the GeoIP database, MRT dumps (opened only), and the state file of
//! operator overrides. Building from them is the decision core's job.

use petrel_config::Config;
use petrel_director::{build, needs, Built, Need, Overrides, Sources};
use petrel_mapping::{BgpData, GeoTable};
use std::path::Path;
use std::sync::Arc;

/// Read and validate a config file.
pub fn load_config(path: &Path) -> Result<Config, Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("{}: cannot read: {e}", path.display())])?;
    petrel_config::parse(path, &text).map_err(|errs| errs.iter().map(|e| e.to_string()).collect())
}

/// Read every file a config names.
pub fn read(config: &Config) -> Sources {
    let mut src = Sources::default();
    for need in needs(config) {
        match need {
            Need::Text(p) => {
                let r = std::fs::read_to_string(&p).map_err(|e| e.to_string());
                src.texts.insert(p, r);
            }
            Need::Geo(p) => src.geo = Some(read_geo(&p).map(Arc::new)),
            Need::Mrt(p) => {
                let r = std::fs::File::open(&p).map(drop).map_err(|e| e.to_string());
                src.mrt.insert(p, r);
            }
        }
    }
    src
}

fn read_geo(path: &Path) -> Result<GeoTable, String> {
    let reader = maxminddb::Reader::open_readfile(path).map_err(|e| e.to_string())?;
    GeoTable::from_reader(&reader).map_err(|e| e.to_string())
}

/// Read a config and every file it names, and build it (with the routing
/// views there are, if any).
pub fn load(path: &Path, bgp: Option<Arc<BgpData>>) -> Result<Built, Vec<String>> {
    let config = load_config(path)?;
    let src = read(&config);
    build(config, &src, bgp).map_err(|errs| errs.into_iter().map(|e| e.to_string()).collect())
}

/// The overrides a state file records; none when it does not exist yet.
pub fn read_overrides(path: &Path) -> Result<Overrides, String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Overrides::from_text(&t).map_err(|e| format!("{}: bad state file: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Overrides::default()),
        Err(e) => Err(format!("{}: cannot read state file: {e}", path.display())),
    }
}

/// Write aside and rename, so a crash never leaves half a file.
pub fn write_overrides(path: &Path, o: &Overrides) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, o.to_text()).map_err(|e| format!("{}: cannot write state file: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: cannot write state file: {e}", path.display()))
}
