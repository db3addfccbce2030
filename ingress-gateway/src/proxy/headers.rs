//! Pure header handling: hop-by-hop stripping, X-Forwarded-*, request ids, cookies,
//! redirect locations.

use std::cell::RefCell;
use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// `x-forwarded-for`.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `x-forwarded-proto`.
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `x-forwarded-host`.
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `x-forwarded-port`.
pub static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
/// `x-real-ip`.
pub static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
/// `x-request-id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Hop-by-hop headers removed from every message; `Connection`, `Upgrade` and `TE` have
/// rules of their own in [`strip_hop_by_hop`].
static ALWAYS_HOP_BY_HOP: [HeaderName; 6] = [
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Removes the hop-by-hop headers of RFC 9110 §7.6.1: the ones `Connection` lists,
/// `Connection` itself, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding`
/// and `Upgrade`. `TE: trailers` is kept when `keep_te_trailers` (gRPC needs it on h2);
/// `Connection: upgrade` and `Upgrade` are kept when `upgrading` (WebSocket).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_te_trailers: bool, upgrading: bool) {
    // Most messages carry none of them: one pass over the names is cheaper than the
    // removals below. (Names that `Connection` lists matter only when it is present.)
    if !upgrading && !headers.keys().any(is_hop_by_hop) {
        return;
    }
    if let Some(listed) = headers.get(header::CONNECTION).cloned() {
        if let Ok(listed) = listed.to_str() {
            for name in listed.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                if upgrading && name.eq_ignore_ascii_case("upgrade") {
                    continue;
                }
                if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
                    if name != header::TE || !keep_te_trailers {
                        headers.remove(&name);
                    }
                }
            }
        }
    }
    if upgrading {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
    for name in &ALWAYS_HOP_BY_HOP {
        headers.remove(name);
    }
    let te_is_trailers = headers
        .get(header::TE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    if !(keep_te_trailers && te_is_trailers) {
        headers.remove(header::TE);
    }
}

/// Whether `name` is hop-by-hop whatever `Connection` lists.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::UPGRADE
        || name == header::TE
        || ALWAYS_HOP_BY_HOP.contains(name)
}

/// Whether an HTTP/1.1 request asks for a protocol upgrade (`Connection: upgrade` and
/// an `Upgrade` header).
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers.get_all(header::CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

/// What the proxy tells the backend about the client.
#[derive(Debug, Clone, Copy)]
pub struct Forwarded<'a> {
    /// The client's address.
    pub client: IpAddr,
    /// `http` or `https`.
    pub proto: &'static str,
    /// The Host the client asked for.
    pub host: &'a HeaderValue,
    /// The port the client connected to.
    pub port: u16,
}

/// Sets X-Forwarded-For (appends the client to any list the client sent, as nginx's
/// `$proxy_add_x_forwarded_for`), X-Forwarded-Proto/-Host/-Port and X-Real-IP
/// (overwritten: the client cannot choose them).
pub fn set_forwarded(headers: &mut HeaderMap, f: Forwarded<'_>) {
    let client = ip_value(f.client);
    let xff = match headers.get(&X_FORWARDED_FOR) {
        Some(prev) if !prev.is_empty() => {
            let mut v = Vec::with_capacity(prev.len() + 2 + client.len());
            v.extend_from_slice(prev.as_bytes());
            v.extend_from_slice(b", ");
            v.extend_from_slice(client.as_bytes());
            HeaderValue::from_bytes(&v).unwrap_or_else(|_| client.clone())
        }
        _ => client.clone(),
    };
    headers.insert(X_FORWARDED_FOR.clone(), xff);
    headers.insert(X_REAL_IP.clone(), client);
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(f.proto));
    headers.insert(X_FORWARDED_HOST.clone(), f.host.clone());
    headers.insert(X_FORWARDED_PORT.clone(), HeaderValue::from(f.port));
}

/// The client's address as a header value. Clients come back on keep-alive connections
/// and through few addresses (NAT, an outer load balancer): the last address formatted
/// is kept per thread rather than formatted again for every request.
fn ip_value(ip: IpAddr) -> HeaderValue {
    thread_local! {
        static LAST: RefCell<Option<(IpAddr, HeaderValue)>> = const { RefCell::new(None) };
    }
    let ip = ip.to_canonical();
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((seen, value)) if *seen == ip => value.clone(),
            _ => {
                let value = HeaderValue::try_from(ip.to_string())
                    .expect("an IP address is a valid header value");
                *last = Some((ip, value.clone()));
                value
            }
        }
    })
}

/// The request's X-Request-ID, or a new random (UUID v4) one set on `headers`.
pub fn ensure_request_id(headers: &mut HeaderMap) -> HeaderValue {
    match headers.get(&X_REQUEST_ID) {
        Some(v) if !v.is_empty() => v.clone(),
        _ => {
            let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
            // From the thread-local generator: `Uuid::new_v4` costs a getrandom
            // syscall per request.
            let id = uuid::Builder::from_random_bytes(rand::random())
                .into_uuid()
                .hyphenated()
                .encode_lower(&mut buf);
            let v = HeaderValue::from_str(id).expect("a UUID is a valid header value");
            headers.insert(X_REQUEST_ID.clone(), v.clone());
            v
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` header(s) (HTTP/2 clients may
/// split cookies over several headers).
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('"'))
        })
}

/// `https://HOST[:PORT]PATH?QUERY` for a plain-HTTP request redirected to HTTPS; the
/// port is left out when it is 443. `host` may carry a port (dropped) and may be an
/// IPv6 literal in brackets.
pub fn https_location(host: &str, https_port: u16, path_and_query: &str) -> String {
    let bare = strip_port(host);
    if https_port == 443 {
        format!("https://{bare}{path_and_query}")
    } else {
        format!("https://{bare}:{https_port}{path_and_query}")
    }
}

/// `host` without a `:port` suffix (IPv6 literals keep their brackets).
pub fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn names(h: &HeaderMap) -> Vec<&str> {
        let mut v: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        v.sort();
        v
    }

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_lists_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("proxy-authorization", "basic x"),
            ("te", "gzip"),
            ("trailer", "x-sum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut h, false, false);
        assert_eq!(names(&h), ["accept"]);
    }

    #[test]
    fn te_trailers_survives_for_grpc() {
        let mut h = map(&[("te", "trailers"), ("content-type", "application/grpc")]);
        strip_hop_by_hop(&mut h, true, false);
        assert_eq!(h.get("te").unwrap(), "trailers");
        let mut h = map(&[("te", "trailers")]);
        strip_hop_by_hop(&mut h, false, false);
        assert!(h.get("te").is_none());
    }

    #[test]
    fn an_upgrade_keeps_upgrade_and_connection_upgrade() {
        let mut h = map(&[
            ("connection", "Upgrade, x-secret"),
            ("upgrade", "websocket"),
            ("x-secret", "1"),
        ]);
        assert!(wants_upgrade(&h));
        strip_hop_by_hop(&mut h, false, true);
        assert_eq!(names(&h), ["connection", "upgrade"]);
        assert_eq!(h.get("connection").unwrap(), "upgrade");
    }

    #[test]
    fn forwarded_headers_append_the_client_and_overwrite_the_rest() {
        let host = HeaderValue::from_static("shop.example.com");
        let mut h = map(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("x-real-ip", "203.0.113.66"),
            ("x-forwarded-proto", "https"),
        ]);
        set_forwarded(
            &mut h,
            Forwarded {
                client: "192.0.2.7".parse().unwrap(),
                proto: "http",
                host: &host,
                port: 80,
            },
        );
        assert_eq!(h.get("x-forwarded-for").unwrap(), "198.51.100.1, 192.0.2.7");
        assert_eq!(h.get("x-real-ip").unwrap(), "192.0.2.7");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "http");
        assert_eq!(h.get("x-forwarded-host").unwrap(), "shop.example.com");
        assert_eq!(h.get("x-forwarded-port").unwrap(), "80");
    }

    #[test]
    fn a_v4_mapped_client_is_written_as_v4() {
        let host = HeaderValue::from_static("a");
        let mut h = HeaderMap::new();
        let f = Forwarded {
            client: "::ffff:192.0.2.7".parse().unwrap(),
            proto: "https",
            host: &host,
            port: 443,
        };
        set_forwarded(&mut h, f);
        assert_eq!(h.get("x-forwarded-for").unwrap(), "192.0.2.7");
    }

    #[test]
    fn each_client_gets_its_own_address_whatever_came_before() {
        for ip in [
            "192.0.2.7",
            "2001:db8::1",
            "2001:db8::1",
            "192.0.2.7",
            "::ffff:192.0.2.8",
        ] {
            let want = ip.trim_start_matches("::ffff:");
            assert_eq!(ip_value(ip.parse().unwrap()), want);
        }
    }

    #[test]
    fn a_request_id_is_kept_or_generated() {
        let mut h = map(&[("x-request-id", "abc")]);
        assert_eq!(ensure_request_id(&mut h), "abc");
        let mut h = HeaderMap::new();
        let id = ensure_request_id(&mut h);
        assert_eq!(id.len(), 36);
        assert_eq!(h.get("x-request-id").unwrap(), &id);
    }

    #[test]
    fn cookies_are_found_across_headers() {
        let h = map(&[("cookie", "a=1; b=2"), ("cookie", "route=\"xyz\"")]);
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "route"), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn https_locations_drop_the_plain_port() {
        assert_eq!(
            https_location("shop.example.com:80", 443, "/a?b=1"),
            "https://shop.example.com/a?b=1"
        );
        assert_eq!(
            https_location("shop.example.com", 8443, "/"),
            "https://shop.example.com:8443/"
        );
        assert_eq!(
            https_location("[2001:db8::1]:80", 443, "/"),
            "https://[2001:db8::1]/"
        );
    }
}
