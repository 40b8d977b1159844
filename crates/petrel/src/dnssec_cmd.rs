//! `petrel dnssec`: make a zone's keys, and print what its parent needs.

use petrel_dnssec::key::{Algorithm, FLAG_SEP, FLAG_ZONE};
use petrel_dnssec::Key;
use std::path::Path;

/// Write a new key pair in BIND's format into `dir`; prints its stem.
pub fn keygen(zone: &str, algorithm: &str, ksk: bool, dir: &Path) -> Result<(), String> {
    let alg = match algorithm.to_ascii_lowercase().as_str() {
        "ecdsa-p256" | "ecdsap256sha256" | "13" => Algorithm::EcdsaP256Sha256,
        "ed25519" | "15" => Algorithm::Ed25519,
        o => return Err(format!("algorithm `{o}`: use ecdsa-p256 (13) or ed25519 (15)")),
    };
    let owner = petrel_dns_wire::name::from_text(zone).map_err(|e| format!("zone `{zone}`: {e}"))?;
    let flags = FLAG_ZONE | if ksk { FLAG_SEP } else { 0 };
    let (private, key) = Key::generate(&owner, flags, alg).map_err(|e| e.to_string())?;
    let stem = dir.join(key.file_stem());
    let write = |ext: &str, text: &str, mode: u32| -> Result<(), String> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = petrel_director::signing::key_file(&stem, ext);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        f.write_all(text.as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    write("key", &key.key_file(), 0o644)?;
    // The private half is for the server's user alone.
    write("private", &key.private_file(&private), 0o600)?;
    println!("{}", stem.display());
    Ok(())
}

/// Print the DS records of a config's signed zone (of its SEP keys; of
/// every signing key when none has the flag), for its parent.
pub fn ds(config: &Path, zone: &str) -> Result<(), String> {
    let built = crate::sources::load(config, None).map_err(|e| e.join("\n"))?;
    let want = petrel_dns_wire::name::from_text(zone).map_err(|e| format!("zone `{zone}`: {e}"))?;
    let want = petrel_dns_wire::name::to_lowercase(&want);
    let zones = &built.zones;
    let z = zones
        .zone_of(&want)
        .map(|z| zones.zone(z))
        .filter(|z| *z.apex == *want)
        .ok_or_else(|| format!("{zone} is not a zone of {}", config.display()))?;
    let keys = z
        .signing
        .as_ref()
        .ok_or_else(|| format!("zone {zone} is not signed (it has no [zone.dnssec])"))?;
    for k in keys.ksks() {
        println!("{}", k.ds_text());
    }
    Ok(())
}
