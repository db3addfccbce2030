//! TLS termination: certificates from PEM, the self-signed default certificate, and a
//! rustls certificate resolver that reads the current [`SharedSnapshot`] on every
//! handshake, so a rotated Secret is served from the next handshake on.
//!
//! Everything uses rustls' `ring` provider explicitly, so no process-wide default
//! provider has to be installed.

mod sessions;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::snapshot::SharedSnapshot;
use sessions::SessionCache;

/// Why a certificate could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate PEM holds no `CERTIFICATE` block.
    #[error("no certificate in PEM")]
    NoCertificate,
    /// The key PEM holds no private key block.
    #[error("no private key in PEM")]
    NoPrivateKey,
    /// A PEM block could not be decoded.
    #[error("invalid PEM ({what}): {source}")]
    Pem {
        /// Which input (certificate or key).
        what: &'static str,
        /// The decoding error.
        source: std::io::Error,
    },
    /// The key's algorithm is not supported, or its encoding is broken.
    #[error("unusable private key: {0}")]
    Key(rustls::Error),
    /// The private key is not the one of the certificate's public key.
    #[error("key does not match certificate")]
    KeyMismatch,
    /// Building a TLS configuration failed.
    #[error("TLS configuration: {0}")]
    Config(rustls::Error),
    /// Making the self-signed certificate failed.
    #[error("generating a certificate: {0}")]
    Generate(String),
}

/// The crypto provider used everywhere in the gateway.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses a PEM certificate chain (leaf first, as in a `kubernetes.io/tls` Secret's
/// `tls.crt`) and a PEM private key (PKCS#8, PKCS#1 or SEC1) and checks that they
/// belong together.
pub fn certified_key_from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, TlsError> {
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &*cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::Pem {
            what: "certificate",
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &*key_pem)
        .map_err(|source| TlsError::Pem {
            what: "private key",
            source,
        })?
        .ok_or(TlsError::NoPrivateKey)?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(TlsError::Key)?;
    let ck = CertifiedKey::new(certs, signing);
    match ck.keys_match() {
        Ok(()) => Ok(ck),
        // A key whose public half rustls cannot compute cannot be checked; accept it
        // (the handshake will fail visibly) rather than refuse a possibly valid pair.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(ck),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyMismatch),
        Err(e) => Err(TlsError::Key(e)),
    }
}

/// A fresh self-signed certificate (CN "IronLB default certificate", SAN
/// `ironlb.invalid`), served when no Ingress certificate matches the SNI — the role of
/// ingress-nginx's "Kubernetes Ingress Controller Fake Certificate".
pub fn self_signed_default() -> CertifiedKey {
    try_self_signed_default().expect("generating an ECDSA P-256 self-signed certificate")
}

fn try_self_signed_default() -> Result<CertifiedKey, TlsError> {
    let err = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let mut params =
        rcgen::CertificateParams::new(vec!["ironlb.invalid".to_string()]).map_err(err)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "IronLB default certificate");
    let key = rcgen::KeyPair::generate().map_err(err)?;
    let cert = params.self_signed(&key).map_err(err)?;
    certified_key_from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes())
}

/// Picks the certificate for each handshake from the snapshot current at that moment.
#[derive(Debug)]
pub struct SnapshotCertResolver {
    snapshot: SharedSnapshot,
}

impl SnapshotCertResolver {
    /// A resolver over `snapshot`.
    pub fn new(snapshot: SharedSnapshot) -> Self {
        Self { snapshot }
    }
}

impl ResolvesServerCert for SnapshotCertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.snapshot.load().cert_for_sni(hello.server_name()))
    }
}

/// Sessions kept for resumption: about what ingress-nginx's `ssl_session_cache
/// shared:SSL:10m` holds (some 4,000 a megabyte). rustls keeps 256 by default and sends
/// two TLS 1.3 tickets a handshake, so a client's session was gone after some 128 other
/// clients, and with it the cheap resumed handshake. Kept in [`SessionCache`], whose
/// take does not grow with the number kept.
const SESSION_CACHE: usize = 40_960;

/// The listener's TLS configuration: TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`,
/// certificates from the snapshot by SNI, a session cache of `SESSION_CACHE` (stateful
/// resumption; no ticket keys, as ingress-nginx's default `ssl-session-tickets: false`).
pub fn server_config(snapshot: SharedSnapshot) -> Result<Arc<ServerConfig>, TlsError> {
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SnapshotCertResolver::new(snapshot)));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    cfg.session_storage = Arc::new(SessionCache::new(SESSION_CACHE));
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests;
