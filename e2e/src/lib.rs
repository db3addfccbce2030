//! IronLB end to end: shared test support, the `ironlb-lab` demo and its lab
//! commands, and the benchmark drivers.
//!
//! The two harnesses live in their own crates so that each stays small:
//! [`ironlb_apiserver`] (the embedded Kubernetes API server) and [`ironlb_netlab`] (the
//! network-namespace lab). This crate puts them together with the real binaries.

pub mod demo;
pub mod lab_cluster;
pub mod lab_up;
pub mod rbac;
pub mod support;
pub mod tools;
