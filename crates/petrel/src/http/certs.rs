//! TLS for the HTTP fronts: certificates chosen by SNI, read from files
//! when a generation is built and swapped in whole on reload.

use petrel_config::HttpConf;
use petrel_http::rules::HostPattern;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::Arc;

/// The certificates of one front, by SNI name; the first is the default
/// (a client without SNI, or with a name no certificate lists).
#[derive(Debug)]
pub struct Certs {
    by_name: Vec<(HostPattern, Arc<CertifiedKey>)>,
    default: Option<Arc<CertifiedKey>>,
}

/// Read a front's certificates and keys; an error names the file.
pub fn load(front: &HttpConf) -> Result<Certs, String> {
    let provider = rustls::crypto::ring::default_provider();
    let mut by_name = Vec::new();
    let mut default = None;
    for c in &front.certificates {
        let read =
            |p: &std::path::Path| crate::sources::read_bytes(p, 16 << 20).map_err(|e| format!("{}: {e}", p.display()));
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(&c.cert)?)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: not PEM certificates: {e}", c.cert.display()))?;
        if chain.is_empty() {
            return Err(format!("{}: no certificate in the file", c.cert.display()));
        }
        let key = PrivateKeyDer::from_pem_slice(&read(&c.key)?)
            .map_err(|e| format!("{}: not a PEM private key: {e}", c.key.display()))?;
        let signer = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| format!("{}: unusable key: {e}", c.key.display()))?;
        let ck = Arc::new(CertifiedKey::new(chain, signer));
        ck.keys_match()
            .map_err(|e| format!("{} and {}: {e}", c.cert.display(), c.key.display()))?;
        default.get_or_insert_with(|| ck.clone());
        for n in &c.names {
            by_name.push((n.clone(), ck.clone()));
        }
    }
    Ok(Certs { by_name, default })
}

impl Certs {
    fn pick(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        sni.and_then(|n| self.by_name.iter().find(|(p, _)| p.matches(n)).map(|(_, k)| k.clone()))
            .or_else(|| self.default.clone())
    }
}

/// rustls asks this for each handshake; reloads replace what it holds.
#[derive(Debug)]
pub struct Resolver(pub arc_swap::ArcSwap<Certs>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.load().pick(hello.server_name())
    }
}

/// A rustls server config that offers HTTP/2 and HTTP/1.1 (ALPN).
pub fn server_config(resolver: Arc<Resolver>) -> Arc<rustls::ServerConfig> {
    let mut c = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(c)
}
