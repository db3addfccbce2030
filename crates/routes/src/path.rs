//! Path validation, normalisation and the matchit keys of a path rule.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::{Error, PathType};

/// How a compiled path rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathKind {
    /// Element-wise prefix (`Prefix` and `ImplementationSpecific`).
    Prefix,
    /// Exact, case-sensitive equality. Orders above `Prefix`: Exact beats Prefix.
    Exact,
}

/// A validated, normalised path rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PathRule {
    /// Exact or Prefix.
    pub kind: PathKind,
    /// The path; for Prefix without its trailing slash (except the root `/`). Shared:
    /// every table built from the rule carries it.
    pub path: Arc<str>,
}

impl fmt::Display for PathRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            PathKind::Exact => "Exact",
            PathKind::Prefix => "Prefix",
        };
        write!(f, "{kind} {}", self.path)
    }
}

impl PathRule {
    /// Validates and normalises an Ingress path.
    ///
    /// Exact and Prefix paths must match a conservative character set (ingress-nginx's
    /// strict path validation, plus `%XX` escapes): `/` followed by `A-Z a-z 0-9 / . _ ~ - :`
    /// and percent escapes, with no empty (`//`) or dot (`.`, `..`) segments.
    /// ImplementationSpecific paths may also contain `{ } @ ! & = ,`; ones that look
    /// like regular expressions are refused with [`Error::RegexPath`] since matching them
    /// literally would silently never match.
    pub fn parse(path: &str, path_type: PathType) -> Result<Self, Error> {
        let path = match (path, path_type) {
            ("", PathType::ImplementationSpecific) => "/",
            _ => path,
        };
        validate(path, path_type)?;
        let kind = match path_type {
            PathType::Exact => PathKind::Exact,
            PathType::Prefix | PathType::ImplementationSpecific => PathKind::Prefix,
        };
        // Rules are compared with normalised request paths, so normalise them the same
        // way (this decodes %XX escapes).
        let normalized = normalize_path(path);
        let path = match kind {
            // A trailing slash in a Prefix rule is ignored: `/foo/` == `/foo`.
            PathKind::Prefix if normalized.len() > 1 => normalized.trim_end_matches('/'),
            _ => &normalized,
        };
        Ok(Self {
            kind,
            path: path.into(),
        })
    }

    /// Reference semantics of this rule (used by the property tests against the
    /// matchit-based lookup, and handy for the glue's debugging).
    pub fn matches(&self, request_path: &str) -> bool {
        match self.kind {
            PathKind::Exact => request_path == &*self.path,
            PathKind::Prefix => prefix_matches(&self.path, request_path),
        }
    }

    /// The matchit route of this rule: the path itself, braces escaped so that it is
    /// always a static route. Exact and Prefix rules on the same path share the key
    /// (see `table::Slot`); Prefix semantics come from the ancestor walk in
    /// `table::HostRoutes::lookup`, not from matchit catch-alls (see there why).
    pub(crate) fn matchit_key(&self) -> String {
        escape_matchit(&self.path)
    }
}

/// Normalises a request path the way nginx does before matching locations: `%XX`
/// escapes are decoded, `.` and `..` segments resolved (never above the root) and
/// repeated slashes merged. Without this, `/%61dmin` or `/public/../admin` would miss
/// the `/admin` rule (and its source-range allowlist) and reach a backend that decodes
/// them into `/admin`. Returns the input unchanged (borrowed, no allocation) when there
/// is nothing to do, which is the common case. Paths not starting with `/` are returned
/// as they are. Invalid UTF-8 after decoding becomes U+FFFD (it can only fail to match).
///
/// [`crate::RouteTable::route`] normalises internally; pass the normalised path to
/// [`crate::Route::rewrite_path`]. The request is forwarded with its original path.
pub fn normalize_path(path: &str) -> Cow<'_, str> {
    if !path.starts_with('/') || !needs_normalization(path) {
        return Cow::Borrowed(path);
    }
    let decoded = percent_decode(path);
    let decoded = String::from_utf8_lossy(&decoded);
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in decoded.split('/').skip(1) {
        trailing_slash = matches!(segment, "" | "." | "..");
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || segments.is_empty() {
        out.push('/');
    }
    Cow::Owned(out)
}

/// Fast check on the hot path: substring searches are SIMD-accelerated in std, the
/// segment scan only runs for paths containing `/.`.
fn needs_normalization(path: &str) -> bool {
    if path.contains('%') || path.contains("//") {
        return true;
    }
    if !path.contains("/.") {
        return false;
    }
    path.split('/').any(|s| s == "." || s == "..")
}

fn percent_decode(path: &str) -> Vec<u8> {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |j: usize| b.get(j).and_then(|c| (*c as char).to_digit(16));
        match (b[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Element-wise prefix match: `/foo` matches `/foo`, `/foo/`, `/foo/bar`, not `/foobar`.
/// `prefix` is normalised (no trailing slash unless it is `/`).
pub(crate) fn prefix_matches(prefix: &str, request_path: &str) -> bool {
    if prefix == "/" {
        return request_path.starts_with('/');
    }
    match request_path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Escapes matchit's parameter braces so that a user path is always a static route.
pub(crate) fn escape_matchit(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '{' => out.push_str("{{"),
            '}' => out.push_str("}}"),
            c => out.push(c),
        }
    }
    out
}

const REGEX_CHARS: &[u8] = b"()[]*+?^$|\\";

fn validate(path: &str, path_type: PathType) -> Result<(), Error> {
    let invalid = |reason| Error::InvalidPath {
        path: path.to_string(),
        reason,
    };
    if !path.starts_with('/') {
        return Err(invalid("must start with '/'"));
    }
    if path.len() > 4096 {
        return Err(invalid("longer than 4096 bytes"));
    }
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let ok = match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'.' | b'_' | b'~' | b'-' | b':' => {
                true
            }
            b'%' => {
                let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
                if !(hex(i + 1) && hex(i + 2)) {
                    return Err(invalid("'%' must start a %XX escape"));
                }
                i += 2;
                true
            }
            b'{' | b'}' | b'@' | b'!' | b'&' | b'=' | b','
                if path_type == PathType::ImplementationSpecific =>
            {
                true
            }
            _ if path_type == PathType::ImplementationSpecific && REGEX_CHARS.contains(&b) => {
                return Err(Error::RegexPath {
                    path: path.to_string(),
                })
            }
            _ => false,
        };
        if !ok {
            return Err(invalid(
                "only letters, digits, '/', '.', '_', '~', '-', ':' and %XX escapes are allowed",
            ));
        }
        i += 1;
    }
    // Segments: the first split element is the empty string before the leading '/', the
    // last may be empty (trailing slash).
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    for (n, segment) in segments.iter().enumerate() {
        if segment.is_empty() && n != last {
            return Err(invalid("empty path segment ('//')"));
        }
        if *segment == "." || *segment == ".." {
            return Err(invalid("'.' and '..' segments are not allowed"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(p: &str) -> PathRule {
        PathRule::parse(p, PathType::Prefix).unwrap()
    }

    #[test]
    fn prefix_is_element_wise() {
        let foo = prefix("/foo");
        assert!(foo.matches("/foo"));
        assert!(foo.matches("/foo/"));
        assert!(foo.matches("/foo/bar"));
        assert!(!foo.matches("/foobar"));
        assert!(!foo.matches("/fo"));
    }

    #[test]
    fn trailing_slash_of_a_prefix_is_ignored() {
        assert_eq!(prefix("/foo/"), prefix("/foo"));
        assert!(prefix("/foo/").matches("/foo"));
        assert_eq!(&*prefix("/").path, "/");
    }

    #[test]
    fn exact_keeps_its_trailing_slash() {
        let rule = PathRule::parse("/foo/", PathType::Exact).unwrap();
        assert!(rule.matches("/foo/"));
        assert!(!rule.matches("/foo"));
    }

    #[test]
    fn implementation_specific_is_prefix_and_empty_means_root() {
        let rule = PathRule::parse("/a", PathType::ImplementationSpecific).unwrap();
        assert_eq!(rule.kind, PathKind::Prefix);
        let root = PathRule::parse("", PathType::ImplementationSpecific).unwrap();
        assert_eq!(&*root.path, "/");
    }

    #[test]
    fn strict_charset_refuses_injection_attempts() {
        for bad in [
            "", "foo", "/foo;", "/foo bar", "/a\nb", "/a\"b", "/a'b", "/a{b}", "/a$b", "/a\\b",
            "/a%2", "/a%zz", "/a//b", "/a/../b", "/./a", "/é",
        ] {
            assert!(
                PathRule::parse(bad, PathType::Prefix).is_err(),
                "{bad:?} should be refused"
            );
            assert!(PathRule::parse(bad, PathType::Exact).is_err(), "{bad:?}");
        }
        for good in ["/", "/a-b_c.d~e:f", "/v1/%2Fx/", "/A9"] {
            assert!(PathRule::parse(good, PathType::Prefix).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn implementation_specific_allows_braces_but_refuses_regexes() {
        assert!(PathRule::parse("/a{b}", PathType::ImplementationSpecific).is_ok());
        assert_eq!(
            PathRule::parse("/api(/|$)(.*)", PathType::ImplementationSpecific),
            Err(Error::RegexPath {
                path: "/api(/|$)(.*)".into()
            })
        );
        assert!(PathRule::parse("/a;b", PathType::ImplementationSpecific).is_err());
    }

    #[test]
    fn request_paths_are_normalized_like_nginx() {
        let n = |p| normalize_path(p).into_owned();
        assert!(matches!(normalize_path("/a/b/"), Cow::Borrowed(_)));
        assert_eq!(n("/%61dmin"), "/admin");
        assert_eq!(n("/public/../admin"), "/admin");
        assert_eq!(n("/a/./b"), "/a/b");
        assert_eq!(n("/a//b//"), "/a/b/");
        assert_eq!(n("/../../etc"), "/etc");
        assert_eq!(n("/a/b/.."), "/a/");
        assert_eq!(n("/a/."), "/a/");
        assert_eq!(n("/.."), "/");
        assert_eq!(n("//"), "/");
        assert_eq!(n("/a%2Fb"), "/a/b");
        assert_eq!(n("/%2e%2e/x"), "/x");
        assert_eq!(n("/100%"), "/100%");
        assert_eq!(n("/%zz"), "/%zz");
        assert_eq!(n("/%ff"), "/\u{fffd}");
        assert_eq!(n("*"), "*");
    }

    #[test]
    fn rule_paths_are_normalized_too() {
        assert_eq!(&*prefix("/%61pi/").path, "/api");
        let exact = PathRule::parse("/a%2Fb/", PathType::Exact).unwrap();
        assert_eq!(&*exact.path, "/a/b/");
    }

    #[test]
    fn matchit_keys_escape_braces() {
        let rule = PathRule::parse("/x{y}", PathType::ImplementationSpecific).unwrap();
        assert_eq!(rule.matchit_key(), "/x{{y}}");
        assert_eq!(prefix("/").matchit_key(), "/");
    }
}
