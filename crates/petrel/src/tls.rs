//! TLS client settings for HTTPS health checks (rustls with ring).

use petrel_config::TlsCheck;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;

/// A connector and the server name to present, or why there is none.
pub fn connector(t: &TlsCheck) -> Result<(tokio_rustls::TlsConnector, ServerName<'static>), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let config = if !t.verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        match &t.ca_file {
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            Some(f) => {
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(f)
                    .map_err(|e| format!("{}: {e}", f.display()))?
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("{}: {e}", f.display()))?;
                if certs.is_empty() {
                    return Err(format!("{}: no certificate in the file", f.display()));
                }
                for c in certs {
                    roots.add(c).map_err(|e| format!("{}: {e}", f.display()))?;
                }
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    let name = ServerName::try_from(t.sni.clone()).map_err(|e| format!("TLS server name `{}`: {e}", t.sni))?;
    Ok((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
}

/// `verify = false`: any certificate is accepted, but the handshake's
/// signatures are still checked, so the peer holds the key it presents.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
