//! Shared test support: a small cluster of Services with endpoints, and a way to ask
//! "which Service serves this request" in one word.

use crate::{
    compile, Diagnostic, EndpointSliceInput, IngressInput, Inputs, Match, Reason, RouteTable,
    ServiceInput,
};

/// Services that exist in namespace `shop`, each with one ready endpoint.
pub(crate) const SERVICES: &[&str] = &["web", "api", "static", "canary", "fallback", "other"];

/// Inputs with [`SERVICES`] (port 80 named `http` → 8080) and the given Ingresses.
pub(crate) fn cluster(ingresses: Vec<IngressInput>) -> Inputs {
    let services = SERVICES
        .iter()
        .map(|name| ServiceInput::new("shop", *name).port("http", 80, 8080));
    let slices = SERVICES.iter().enumerate().map(|(i, name)| {
        EndpointSliceInput::new("shop", *name)
            .port("http", 8080)
            .ready(&format!("192.0.2.{}", i + 1))
    });
    Inputs::new(ingresses, services, slices)
}

/// Compiles [`cluster`] with these Ingresses.
pub(crate) fn compiled(ingresses: Vec<IngressInput>) -> (RouteTable, Vec<Diagnostic>) {
    compile(&cluster(ingresses))
}

/// An Ingress in namespace `shop`.
pub(crate) fn ingress(name: &str) -> IngressInput {
    IngressInput::new("shop", name)
}

/// "web" when a rule to Service web matches, "default:web" for a default backend,
/// "404" when nothing does.
pub(crate) fn served(table: &RouteTable, host: &str, path: &str) -> String {
    match table.route(host, path) {
        Match::Rule(r) => r.backend.service.to_string(),
        Match::DefaultBackend(r) => format!("default:{}", r.backend.service),
        Match::NotFound => "404".into(),
    }
}

/// The reasons of the diagnostics, in order.
pub(crate) fn reasons(diags: &[Diagnostic]) -> Vec<Reason> {
    diags.iter().map(|d| d.reason).collect()
}
