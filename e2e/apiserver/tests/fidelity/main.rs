//! Fidelity tests: real clients (kube-rs, kubectl) against the embedded API server, with
//! assertions on what comes back.

mod support;

mod controller;
mod crds;
mod events_and_leases;
mod http;
mod kubectl;
mod objects;
mod services;
mod watches;
