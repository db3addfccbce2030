//! Upstream connection pools for h2c/gRPC, HTTPS/GRPCS and upgrades (WebSocket): one
//! hyper-util pooled client per wire protocol (and per connect timeout), keep-alive,
//! keyed by endpoint address inside the client. Plain HTTP/1.1 requests use the inline
//! pool of [`super::h1pool`] instead.
//!
//! HTTPS and GRPCS backends are reached over rustls **without verifying the backend's
//! certificate**, as ingress-nginx does by default (`proxy-ssl-verify: off`): backends
//! inside the cluster commonly use self-signed certificates, and the gateway has no CA
//! to check them against. Handshake signatures are still checked.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use ironlb_routes::BackendProtocol;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::body::UpstreamBody;

/// How a backend protocol is spoken on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wire {
    /// HTTP/1.1 over TCP.
    H1,
    /// HTTP/2 with prior knowledge over TCP (H2C, GRPC).
    H2c,
    /// TLS, HTTP/1.1 or h2 by ALPN (HTTPS).
    Tls,
    /// TLS, h2 only (GRPCS).
    TlsH2,
}

impl Wire {
    /// The wire for a `backend-protocol`.
    pub fn of(p: BackendProtocol) -> Wire {
        match p {
            BackendProtocol::Http => Wire::H1,
            BackendProtocol::H2c | BackendProtocol::Grpc => Wire::H2c,
            BackendProtocol::Https => Wire::Tls,
            BackendProtocol::Grpcs => Wire::TlsH2,
        }
    }

    /// URI scheme of upstream requests.
    pub fn scheme(self) -> &'static str {
        match self {
            Wire::H1 | Wire::H2c => "http",
            Wire::Tls | Wire::TlsH2 => "https",
        }
    }

    /// Whether requests must be sent as HTTP/2.
    pub fn is_h2(self) -> bool {
        matches!(self, Wire::H2c | Wire::TlsH2)
    }
}

type PlainClient = Client<HttpConnector, UpstreamBody>;
type TlsClient = Client<HttpsConnector<HttpConnector>, UpstreamBody>;

/// One pooled client.
#[derive(Clone, Debug)]
enum AnyClient {
    Plain(PlainClient),
    Tls(TlsClient),
}

/// Pool settings.
#[derive(Debug, Clone, Copy)]
pub struct PoolConfig {
    /// Default TCP connect timeout (`proxy-connect-timeout` overrides it per route).
    pub connect_timeout: Duration,
    /// Idle upstream connections are closed after this long.
    pub idle_timeout: Duration,
    /// Idle connections kept per endpoint.
    pub max_idle_per_endpoint: usize,
}

/// The upstream clients.
#[derive(Debug)]
pub struct Upstreams {
    cfg: PoolConfig,
    h1: AnyClient,
    h2c: AnyClient,
    tls: AnyClient,
    tls_h2: AnyClient,
    /// Clients for routes with their own connect timeout.
    custom: RwLock<HashMap<(Wire, Duration), AnyClient>>,
}

impl Upstreams {
    /// Builds the default clients.
    pub fn new(cfg: PoolConfig) -> Upstreams {
        let t = cfg.connect_timeout;
        Upstreams {
            h1: build(cfg, Wire::H1, t),
            h2c: build(cfg, Wire::H2c, t),
            tls: build(cfg, Wire::Tls, t),
            tls_h2: build(cfg, Wire::TlsH2, t),
            custom: RwLock::default(),
            cfg,
        }
    }

    /// Sends `req` (absolute URI naming the endpoint) over the pool for `wire`.
    pub fn request(
        &self,
        wire: Wire,
        connect_timeout: Option<Duration>,
        req: http::Request<UpstreamBody>,
    ) -> ResponseFuture {
        let client = match connect_timeout {
            Some(t) if t != self.cfg.connect_timeout => self.custom_client(wire, t),
            _ => match wire {
                Wire::H1 => self.h1.clone(),
                Wire::H2c => self.h2c.clone(),
                Wire::Tls => self.tls.clone(),
                Wire::TlsH2 => self.tls_h2.clone(),
            },
        };
        match client {
            AnyClient::Plain(c) => c.request(req),
            AnyClient::Tls(c) => c.request(req),
        }
    }

    fn custom_client(&self, wire: Wire, timeout: Duration) -> AnyClient {
        if let Some(c) = self.custom.read().expect("pool lock").get(&(wire, timeout)) {
            return c.clone();
        }
        self.custom
            .write()
            .expect("pool lock")
            .entry((wire, timeout))
            .or_insert_with(|| build(self.cfg, wire, timeout))
            .clone()
    }
}

fn build(cfg: PoolConfig, wire: Wire, connect_timeout: Duration) -> AnyClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.enforce_http(false);
    let mut b = Client::builder(TokioExecutor::new());
    b.pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(cfg.idle_timeout)
        .pool_max_idle_per_host(cfg.max_idle_per_endpoint)
        // The proxy sets Host itself (the client's Host, not the endpoint address).
        .set_host(false)
        .http2_only(wire.is_h2())
        .retry_canceled_requests(true);
    match wire {
        Wire::H1 | Wire::H2c => AnyClient::Plain(b.build(http)),
        Wire::Tls | Wire::TlsH2 => {
            let mut tls = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(crate::tls::provider())))
                .with_no_client_auth();
            tls.alpn_protocols.clear(); // set by the builder below
            let builder = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_only();
            let connector = if wire == Wire::TlsH2 {
                builder.enable_http2().wrap_connector(http)
            } else {
                builder.enable_all_versions().wrap_connector(http)
            };
            AnyClient::Tls(b.build(connector))
        }
    }
}

/// Accepts any backend certificate (see the module docs); checks handshake signatures.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
