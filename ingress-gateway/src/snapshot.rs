//! The one immutable snapshot the data path reads: routes, endpoints and certificates
//! together, swapped atomically (pingora's lesson: several ArcSwaps updated one after
//! the other let a request see new routes with old certificates).
//!
//! The watch side (`watch/`) builds a new [`Snapshot`] on every change and stores it in
//! the [`SharedSnapshot`]; the proxy (`proxy/`) and the TLS resolver (`tls/`) load it
//! once per request / handshake and keep that `Arc` for the request's whole life, so
//! in-flight requests never see a half-applied change.

use arc_swap::ArcSwap;
use ironlb_routes::RouteTable;
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::Arc;

/// Everything the data path needs, immutable once built.
#[derive(Debug)]
pub struct Snapshot {
    /// Compiled Ingress routes with resolved endpoints.
    pub routes: RouteTable,
    /// Certificates by Secret (`namespace/name`), for the Secrets the route table's TLS
    /// entries name and that parsed as a certificate + key. A TLS host whose Secret is
    /// missing here is served with `default_cert`.
    pub certs: HashMap<String, Arc<CertifiedKey>>,
    /// The default certificate (self-signed at start, or `--default-ssl-certificate`).
    pub default_cert: Arc<CertifiedKey>,
    /// Counts swaps; 0 is the empty snapshot before the first sync.
    pub generation: u64,
}

impl Snapshot {
    /// The empty snapshot served before the first full sync: every request gets 404.
    pub fn empty(default_cert: Arc<CertifiedKey>) -> Snapshot {
        Snapshot {
            routes: RouteTable::empty(),
            certs: HashMap::new(),
            default_cert,
            generation: 0,
        }
    }

    /// The certificate to present for a TLS client hello's SNI.
    pub fn cert_for_sni(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        sni.and_then(|name| self.routes.tls_secret_for(name))
            .and_then(|secret| {
                self.certs
                    .get(&format!("{}/{}", secret.namespace, secret.name))
            })
            .cloned()
            .unwrap_or_else(|| self.default_cert.clone())
    }
}

/// The shared, atomically swapped snapshot.
pub type SharedSnapshot = Arc<ArcSwap<Snapshot>>;
