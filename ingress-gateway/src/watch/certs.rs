//! Certificates from `kubernetes.io/tls` Secrets, parsed once per Secret version.
//!
//! Every build asks for the certificates of the route table's TLS Secrets; parsing 10,000
//! PEM pairs on every endpoint change would dominate the build, so results (good or bad)
//! are cached by `namespace/name` and `resourceVersion`.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use rustls::sign::CertifiedKey;

use crate::tls::certified_key_from_pem;

/// `data` key of the certificate chain in a TLS Secret.
pub const TLS_CRT: &str = "tls.crt";
/// `data` key of the private key in a TLS Secret.
pub const TLS_KEY: &str = "tls.key";

/// The outcome of loading one Secret: a certificate, or why not (the Event's words).
pub type Loaded = Result<Arc<CertifiedKey>, String>;

/// Parsed Secrets by `namespace/name`, each with the `resourceVersion` it came from.
#[derive(Default)]
pub struct CertCache {
    by_key: HashMap<String, (String, Loaded)>,
}

impl CertCache {
    /// The certificate of `secret` (`None` = not in the store), reusing the last parse
    /// when the Secret's version did not change.
    pub fn load(&mut self, key: &str, secret: Option<&Secret>) -> Loaded {
        let Some(secret) = secret else {
            self.by_key.remove(key);
            return Err("the Secret does not exist (or is not of type kubernetes.io/tls)".into());
        };
        let version = secret.metadata.resource_version.clone().unwrap_or_default();
        if let Some((v, loaded)) = self.by_key.get(key) {
            if *v == version && !version.is_empty() {
                return loaded.clone();
            }
        }
        let loaded = parse(secret);
        self.by_key
            .insert(key.to_string(), (version, loaded.clone()));
        loaded
    }

    /// Forgets Secrets not used by the last build (keeps the cache as small as the table).
    pub fn retain(&mut self, used: impl Fn(&str) -> bool) {
        self.by_key.retain(|k, _| used(k));
    }
}

/// Parses a TLS Secret's `tls.crt` and `tls.key`.
pub fn parse(secret: &Secret) -> Loaded {
    let data = secret.data.as_ref();
    let get = |k: &str| data.and_then(|d| d.get(k)).map(|b| b.0.as_slice());
    let (Some(crt), Some(key)) = (get(TLS_CRT), get(TLS_KEY)) else {
        return Err(format!("{TLS_CRT} or {TLS_KEY} is missing"));
    };
    certified_key_from_pem(crt, key)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(version: &str, crt: &[u8], key: &[u8]) -> Secret {
        let mut s = Secret::default();
        s.metadata.resource_version = Some(version.into());
        s.data = Some(
            [
                (TLS_CRT.to_string(), ByteString(crt.to_vec())),
                (TLS_KEY.to_string(), ByteString(key.to_vec())),
            ]
            .into(),
        );
        s
    }

    fn pem_pair() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["shop.example.com".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_valid_secret_loads_and_is_parsed_once_per_version() {
        let (crt, key) = pem_pair();
        let mut cache = CertCache::default();
        let v1 = secret("1", crt.as_bytes(), key.as_bytes());
        let first = cache.load("shop/tls", Some(&v1)).expect("valid pair");
        let again = cache.load("shop/tls", Some(&v1)).expect("valid pair");
        assert!(Arc::ptr_eq(&first, &again), "same version: no new parse");
        let (crt2, key2) = pem_pair();
        let v2 = secret("2", crt2.as_bytes(), key2.as_bytes());
        let rotated = cache.load("shop/tls", Some(&v2)).expect("valid pair");
        assert!(
            !Arc::ptr_eq(&first, &rotated),
            "a new version is parsed again"
        );
    }

    #[test]
    fn missing_and_broken_secrets_say_why() {
        let mut cache = CertCache::default();
        assert!(cache
            .load("shop/tls", None)
            .unwrap_err()
            .contains("does not exist"));
        let garbage = secret("1", b"not a certificate", b"not a key");
        assert!(cache
            .load("shop/tls", Some(&garbage))
            .unwrap_err()
            .contains("no certificate"));
        let (crt, _) = pem_pair();
        let (_, other_key) = pem_pair();
        let mismatch = secret("1", crt.as_bytes(), other_key.as_bytes());
        assert!(parse(&mismatch).unwrap_err().contains("does not match"));
    }
}
