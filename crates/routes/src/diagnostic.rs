//! Diagnostics: what the glue turns into Warning Events on the named Ingress.

use std::fmt;

use crate::IngressRef;

/// One problem found while compiling, attached to the Ingress it concerns.
///
/// Every compilation reports every current problem again; `Ord` and `Hash` let the
/// glue keep the last set and emit Events only for new ones.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Diagnostic {
    /// The Ingress that gets the Warning Event.
    pub ingress: IngressRef,
    /// Machine-readable reason (the Event's `reason`).
    pub reason: Reason,
    /// Human-readable message (the Event's `note`).
    pub message: String,
}

impl Diagnostic {
    pub(crate) fn new(ingress: &IngressRef, reason: Reason, message: impl Into<String>) -> Self {
        Self {
            ingress: ingress.clone(),
            reason,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.ingress, self.reason, self.message)
    }
}

/// Why a [`Diagnostic`] was raised. [`Reason::as_str`] is the Event reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// A path outside the accepted character set; the path is skipped.
    InvalidPath,
    /// An ImplementationSpecific path that is a regular expression; the path is skipped.
    RegexPathUnsupported,
    /// A rule host that is not a DNS name; the rule is skipped.
    InvalidHost,
    /// The same host+path is claimed by an older Ingress; this path is skipped.
    PathConflict,
    /// The backend Service does not exist; requests get 503.
    UnknownService,
    /// The Service has no such port; requests get 503.
    UnknownServicePort,
    /// The backend has no ready or serving endpoint; requests get 503.
    NoEndpoints,
    /// A snippet annotation, refused (they were the door for CVE-2025-1974).
    SnippetRefused,
    /// Known ingress-nginx annotations that IronLB does not implement (one per Ingress).
    UnsupportedAnnotation,
    /// An annotation value that does not parse; its default is used.
    InvalidAnnotation,
    /// A canary Ingress whose host+path has no main route; the path is ignored.
    CanaryWithoutMainRoute,
    /// A second canary for the same route; the older canary is kept.
    CanaryConflict,
    /// A `spec.defaultBackend` that loses against an older Ingress's one.
    DefaultBackendConflict,
    /// A TLS host claimed with a different Secret by an older Ingress.
    TlsHostConflict,
}

impl Reason {
    /// The CamelCase Event reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidPath => "InvalidPath",
            Reason::RegexPathUnsupported => "RegexPathUnsupported",
            Reason::InvalidHost => "InvalidHost",
            Reason::PathConflict => "PathConflict",
            Reason::UnknownService => "UnknownService",
            Reason::UnknownServicePort => "UnknownServicePort",
            Reason::NoEndpoints => "NoEndpoints",
            Reason::SnippetRefused => "SnippetRefused",
            Reason::UnsupportedAnnotation => "UnsupportedAnnotation",
            Reason::InvalidAnnotation => "InvalidAnnotation",
            Reason::CanaryWithoutMainRoute => "CanaryWithoutMainRoute",
            Reason::CanaryConflict => "CanaryConflict",
            Reason::DefaultBackendConflict => "DefaultBackendConflict",
            Reason::TlsHostConflict => "TlsHostConflict",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
