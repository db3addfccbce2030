//! TLS for the API server. kubectl (client-go) never sends a bearer token over plain
//! HTTP, so like a real API server this one speaks HTTPS, with a throw-away CA whose
//! certificate goes into the kubeconfigs it writes. Plain HTTP is still accepted on the
//! same port (the first byte of a connection tells which) for raw test clients.

use std::sync::Arc;

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// DNS name every serving certificate carries; kubeconfigs for non-loopback addresses
/// name it in `tls-server-name` so that any listener address verifies.
pub const SERVER_NAME: &str = "kubernetes.default.svc";

/// The CA and the server's rustls configuration.
pub struct ServerTls {
    /// PEM of the CA certificate (for kubeconfig `certificate-authority-data`).
    pub ca_pem: String,
    /// Acceptor for incoming TLS connections.
    pub acceptor: tokio_rustls::TlsAcceptor,
}

impl ServerTls {
    /// A fresh CA and serving certificate for loopback and the in-cluster names.
    pub fn generate() -> anyhow::Result<ServerTls> {
        let ca_key = KeyPair::generate().context("generating the CA key")?;
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).context("CA parameters")?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "ironlb embedded apiserver CA");
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .context("self-signing the CA")?;
        let issuer = Issuer::new(ca_params, ca_key);

        let sans: Vec<String> = [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            SERVER_NAME,
            "kubernetes.default.svc.cluster.local",
            "127.0.0.1",
            "::1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let leaf_key = KeyPair::generate().context("generating the serving key")?;
        let mut leaf_params =
            CertificateParams::new(sans).context("serving certificate parameters")?;
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        let leaf = leaf_params
            .signed_by(&leaf_key, &issuer)
            .context("signing the serving certificate")?;

        let chain: Vec<CertificateDer<'static>> = vec![leaf.der().clone(), ca_cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .context("TLS server configuration")?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServerTls {
            ca_pem: ca_cert.pem(),
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }
}
