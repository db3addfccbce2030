use super::*;
use rustls::HandshakeKind;

fn cert_and_key(name: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

#[test]
fn a_matching_certificate_and_key_load() {
    let (cert, key) = cert_and_key("shop.example.com");
    let ck = certified_key_from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
    assert_eq!(ck.cert.len(), 1);
}

#[test]
fn an_empty_certificate_is_refused_clearly() {
    let (_, key) = cert_and_key("shop.example.com");
    let err = certified_key_from_pem(b"", key.as_bytes()).unwrap_err();
    assert_eq!(err.to_string(), "no certificate in PEM");
}

#[test]
fn a_missing_key_is_refused_clearly() {
    let (cert, _) = cert_and_key("shop.example.com");
    let err = certified_key_from_pem(cert.as_bytes(), b"").unwrap_err();
    assert_eq!(err.to_string(), "no private key in PEM");
}

#[test]
fn the_key_of_another_certificate_is_refused() {
    let (cert, _) = cert_and_key("shop.example.com");
    let (_, other_key) = cert_and_key("blog.example.com");
    let err = certified_key_from_pem(cert.as_bytes(), other_key.as_bytes()).unwrap_err();
    assert_eq!(err.to_string(), "key does not match certificate");
}

#[test]
fn the_default_certificate_names_ironlb() {
    let ck = self_signed_default();
    let der = ck.cert[0].as_ref();
    let needle = b"IronLB default certificate";
    assert!(der.windows(needle.len()).any(|w| w == needle));
}

#[test]
fn the_server_config_offers_h2_and_http11() {
    let snapshot: SharedSnapshot = Arc::new(arc_swap::ArcSwap::from_pointee(
        crate::snapshot::Snapshot::empty(Arc::new(self_signed_default())),
    ));
    let cfg = server_config(snapshot).unwrap();
    assert_eq!(
        cfg.alpn_protocols,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );
}

/// One TLS handshake in memory between `server` and `client` (for "ironlb.invalid", the
/// default certificate's name), the session tickets sent after it included; how it went.
fn handshake(server: &Arc<ServerConfig>, client: &Arc<rustls::ClientConfig>) -> HandshakeKind {
    let name = rustls::pki_types::ServerName::try_from("ironlb.invalid").unwrap();
    let mut c =
        rustls::Connection::from(rustls::ClientConnection::new(client.clone(), name).unwrap());
    let mut s = rustls::Connection::from(rustls::ServerConnection::new(server.clone()).unwrap());
    // `|`, not `||`: both directions every turn.
    while pump(&mut c, &mut s) | pump(&mut s, &mut c) {}
    assert!(!c.is_handshaking() && !s.is_handshaking());
    c.handshake_kind().unwrap()
}

/// Moves what `from` has to send into `to`; whether anything moved.
fn pump(from: &mut rustls::Connection, to: &mut rustls::Connection) -> bool {
    let mut wire = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut wire).unwrap();
    }
    if wire.is_empty() {
        return false;
    }
    to.read_tls(&mut wire.as_slice()).unwrap();
    to.process_new_packets().unwrap();
    true
}

#[test]
fn a_client_resumes_its_session_after_hundreds_of_other_clients() {
    let default = Arc::new(self_signed_default());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(default.cert[0].clone()).unwrap();
    let snapshot: SharedSnapshot = Arc::new(arc_swap::ArcSwap::from_pointee(
        crate::snapshot::Snapshot::empty(default),
    ));
    let server = server_config(snapshot).unwrap();
    let client = || {
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots.clone())
                .with_no_client_auth(),
        )
    };
    let first = client();
    assert_eq!(handshake(&server, &first), HandshakeKind::Full);
    assert_eq!(handshake(&server, &first), HandshakeKind::Resumed);
    // 200 other clients, two tickets each: more than rustls's default cache keeps.
    for _ in 0..200 {
        handshake(&server, &client());
    }
    assert_eq!(handshake(&server, &first), HandshakeKind::Resumed);
}
