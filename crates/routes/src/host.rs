//! Host rules and request-host normalisation.

use std::fmt;
use std::sync::Arc;

use crate::Error;

/// The host part of an Ingress rule, normalised to lower case without a trailing dot.
/// Names are shared (`Arc<str>`): every route of a host carries its host rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostRule {
    /// A rule without host: every host.
    Any,
    /// `*.example.com`, stored as the suffix `example.com`; matches one extra label.
    Wildcard(Arc<str>),
    /// An exact host name.
    Exact(Arc<str>),
}

impl fmt::Display for HostRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostRule::Any => f.write_str("*"),
            HostRule::Wildcard(suffix) => write!(f, "*.{suffix}"),
            HostRule::Exact(host) => f.write_str(host),
        }
    }
}

impl HostRule {
    /// Parses an Ingress rule or TLS host: a DNS name, optionally with a leading `*.`
    /// label; empty means [`HostRule::Any`].
    pub fn parse(host: &str) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidHost {
            host: host.to_string(),
            reason,
        };
        let lower = host.trim_end_matches('.').to_ascii_lowercase();
        if lower.is_empty() {
            return Ok(HostRule::Any);
        }
        if lower.len() > 253 {
            return Err(invalid("longer than 253 characters"));
        }
        let (wildcard, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, lower.as_str()),
        };
        for label in name.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(invalid("every DNS label must be 1 to 63 characters"));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(invalid(
                    "only letters, digits, '-' and a leading '*.' label are allowed",
                ));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(invalid("a DNS label cannot start or end with '-'"));
            }
        }
        Ok(if wildcard {
            HostRule::Wildcard(name.into())
        } else {
            HostRule::Exact(name.into())
        })
    }

    /// Whether a request host, already lower-cased without port or trailing dot, matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostRule::Any => true,
            HostRule::Exact(h) => **h == *host,
            HostRule::Wildcard(suffix) => wildcard_suffix(host) == Some(&**suffix),
        }
    }
}

/// The part after the first label (`a.example.com` → `example.com`), if the first label
/// is non-empty: what a single-label wildcard rule is keyed by.
pub(crate) fn wildcard_suffix(host: &str) -> Option<&str> {
    let (label, rest) = host.split_once('.')?;
    (!label.is_empty() && !rest.is_empty()).then_some(rest)
}

/// Longest host we look up; longer Host headers match only host-less rules.
pub(crate) const MAX_HOST: usize = 256;

/// Strips the port and a trailing dot and lower-cases a Host header / SNI name, then
/// calls `f` with it. The name is copied (into a stack buffer) only when it has
/// upper-case letters; the common case borrows. `f` gets `None` for a host that cannot
/// match any rule (too long, not ASCII).
#[inline]
pub(crate) fn with_request_host<R>(host: &str, f: impl FnOnce(Option<&str>) -> R) -> R {
    let host = strip_port(host);
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.len() > MAX_HOST || !host.is_ascii() {
        return f(None);
    }
    if !host.bytes().any(|b| b.is_ascii_uppercase()) {
        return f(Some(host));
    }
    let mut buf = [0u8; MAX_HOST];
    let out = &mut buf[..host.len()];
    out.copy_from_slice(host.as_bytes());
    out.make_ascii_lowercase();
    f(std::str::from_utf8(out).ok())
}

/// Drops a `:port` suffix ("[::1]:8080" → "[::1]", "a.example:80" → "a.example").
/// A byte scan from the end: this runs on every request.
#[inline]
fn strip_port(host: &str) -> &str {
    let b = host.as_bytes();
    let mut i = b.len();
    while i > 0 && b[i - 1].is_ascii_digit() {
        i -= 1;
    }
    if i > 0 && b[i - 1] == b':' {
        &host[..i - 1]
    } else {
        host
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(host: &str) -> Option<String> {
        with_request_host(host, |h| h.map(str::to_string))
    }

    #[test]
    fn request_hosts_lose_port_case_and_trailing_dot() {
        assert_eq!(norm("Example.COM:8443").as_deref(), Some("example.com"));
        assert_eq!(norm("example.com.").as_deref(), Some("example.com"));
        assert_eq!(norm("example.com").as_deref(), Some("example.com"));
        assert_eq!(norm("[2001:db8::1]:80").as_deref(), Some("[2001:db8::1]"));
        assert_eq!(norm("192.0.2.1:80").as_deref(), Some("192.0.2.1"));
        assert_eq!(norm(&"a".repeat(300)), None);
        assert_eq!(norm("exämple.com"), None);
    }

    #[test]
    fn rule_hosts_are_lowercased_and_validated() {
        assert_eq!(
            HostRule::parse("Shop.Example.com").unwrap(),
            HostRule::Exact("shop.example.com".into())
        );
        assert_eq!(
            HostRule::parse("*.example.com").unwrap(),
            HostRule::Wildcard("example.com".into())
        );
        assert_eq!(HostRule::parse("").unwrap(), HostRule::Any);
        for bad in ["a..b", "*", "a.*.b", "foo_bar.com", "-a.com", "a b", "x:80"] {
            assert!(HostRule::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn wildcard_matches_exactly_one_label() {
        let rule = HostRule::parse("*.example.com").unwrap();
        assert!(rule.matches("a.example.com"));
        assert!(!rule.matches("example.com"));
        assert!(!rule.matches("a.b.example.com"));
        assert!(!rule.matches(".example.com"));
    }
}
