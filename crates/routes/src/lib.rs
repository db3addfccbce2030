//! Pure Ingress → [`RouteTable`] compilation and request matching for the IronLB gateway.
//!
//! The gateway glue converts Kubernetes objects into the plain [`Inputs`], compiles them
//! on every change with one long-lived [`Compiler`] (which reuses what unchanged
//! Ingresses and hosts gave the previous time; [`compile`] is the one-off form), turns
//! the returned [`Diagnostic`]s into Warning Events and swaps the immutable
//! [`RouteTable`] in atomically. Per request it calls
//! [`RouteTable::route`] (no allocation in the common case) and, during the TLS
//! handshake, [`RouteTable::tls_secret_for`].
//!
//! No kube, hyper or tokio here: plain data in, plain data out.
//!
//! ```
//! use ironlb_routes::{compile, EndpointSliceInput, IngressInput, Inputs, Match, ServiceInput};
//!
//! let inputs = Inputs::new(
//!     [IngressInput::new("shop", "web")
//!         .created(1_700_000_000)
//!         .prefix("shop.example.com", "/", "web", 80)
//!         .exact("shop.example.com", "/healthz", "web", 80)
//!         .tls(&["shop.example.com"], "shop-tls")],
//!     [ServiceInput::new("shop", "web").port("http", 80, 8080)],
//!     [EndpointSliceInput::new("shop", "web")
//!         .port("http", 8080)
//!         .ready("192.0.2.10")],
//! );
//! let (table, diagnostics) = compile(&inputs);
//! assert!(diagnostics.is_empty());
//!
//! let Match::Rule(route) = table.route("Shop.Example.com:443", "/cart?item=1") else {
//!     panic!("no route");
//! };
//! assert_eq!(route.backend.endpoints[0].to_string(), "192.0.2.10:8080");
//! assert!(route.https_redirect); // the host has TLS, ssl-redirect defaults to on
//! assert_eq!(table.tls_secret_for("shop.example.com").unwrap().name, "shop-tls");
//! assert_eq!(table.route("other.example.com", "/"), Match::NotFound);
//! ```
//!
//! # Matching rules (decided here, tested in `table` and `compile` tests)
//!
//! * Paths are matched after [`normalize_path`] (`%XX` decoded, dot segments resolved,
//!   `//` merged), as nginx matches locations; the query is ignored.
//! * Hosts are compared case-insensitively; a port and a trailing dot in the Host header
//!   are ignored. `*.example.com` matches exactly one extra label.
//! * Candidate rule sets are tried from the most specific host to the least: the exact
//!   host, then the single-label wildcard, then the rules without a host. The first set
//!   that has a path matching the request wins. So rules without a host really "match
//!   every host" as the Ingress spec says; ingress-nginx instead stops at the host's own
//!   server block and answers with its default backend (we differ only where nginx would
//!   have answered 404 / default backend).
//! * Within one rule set: an Exact path beats any Prefix path; the longest Prefix wins;
//!   Prefix matches element-wise on `/`; ImplementationSpecific is Prefix.
//! * When no path matched: the `spec.defaultBackend` of the oldest Ingress that has rules
//!   for the exact host, then for the wildcard host (as ingress-nginx gives a host's server
//!   the default backend of the Ingress that declares it), then the catch-all default
//!   backend (the oldest Ingress with a `spec.defaultBackend` and no host-specific rules),
//!   then [`Match::NotFound`] (the gateway's own 404 page).

pub mod annotations;
mod backend;
pub mod class;
mod compile;
mod diagnostic;
mod host;
mod input;
mod path;
mod table;
#[cfg(test)]
mod testing;

pub use annotations::{
    AccessPolicy, BackendProtocol, BodySize, CanaryRule, Cidr, CookieAffinity, LoadBalance,
    Redirect, RouteOptions,
};
pub use backend::Backend;
pub use class::{is_ours, IngressClassInput};
pub use compile::{compile, Compiler};
pub use diagnostic::{Diagnostic, Reason};
pub use host::HostRule;
pub use input::{
    BackendRef, EndpointInput, EndpointPortInput, EndpointSliceInput, IngressInput, IngressRef,
    Inputs, PathInput, PathType, PortRef, Protocol, RuleInput, ServiceInput, ServicePortInput,
    TargetPort, TlsInput,
};
pub use path::{normalize_path, PathKind, PathRule};
pub use table::{Canary, Match, Route, RouteTable, SecretRef};

/// Errors of this crate. They never escape [`compile`] (which reports them as
/// [`Diagnostic`]s); they are public for the parsing helpers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An Exact/Prefix/ImplementationSpecific path outside the accepted character set.
    #[error("path {path:?} is invalid: {reason}")]
    InvalidPath {
        /// The path as written in the Ingress.
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An ImplementationSpecific path that looks like a regular expression.
    #[error("path {path:?} looks like a regular expression; regex paths are not supported")]
    RegexPath {
        /// The path as written in the Ingress.
        path: String,
    },
    /// A rule or TLS host that is not a DNS name or single-label wildcard.
    #[error("host {host:?} is invalid: {reason}")]
    InvalidHost {
        /// The host as written in the Ingress.
        host: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An annotation whose value could not be parsed.
    #[error("annotation {name}: value {value:?} is invalid: {reason}")]
    InvalidAnnotation {
        /// Full annotation key.
        name: String,
        /// The raw value.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// A CIDR (or bare address) that does not parse.
    #[error("{value:?} is not an IP address or CIDR")]
    InvalidCidr {
        /// The offending list element.
        value: String,
    },
}
