//! Finding the real IronLB binaries (`ironlb-controller`, `ironlb-speaker`,
//! `ironlb-gateway`, `ironlb-echo`) to run them as a cluster would. Starting and stopping
//! them is `ironlb_netlab::{spawn, command_in, ProcessGuard}`: one way for every process.

use std::path::PathBuf;

/// Path of a workspace binary in the target directory the tests (or `ironlb-lab`) were
/// built into. `make test` and `make lab` build the binaries first.
pub fn binary_path(name: &str) -> PathBuf {
    // Test executables live in target/<profile>/deps, binaries one level up; ironlb-lab
    // itself lives next to the others.
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found: build the binaries first (`cargo build --workspace --bins`, which `make test` does)",
        path.display()
    );
    path
}
