//! Namespace naming: who owns a namespace, and whether its owner is still alive.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{NetlabError, Result};

/// Every lab namespace starts with this.
pub(crate) const PREFIX: &str = "ilb-";

/// Where `ip netns` keeps its namespace handles.
pub(crate) const NETNS_DIR: &str = "/run/netns";

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Identifies one lab: its namespaces are `ilb-<id>-<role>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunId {
    /// A lab owned by a live process: swept once that process is gone.
    Ephemeral {
        /// The owning process.
        pid: u32,
        /// Counter within that process.
        seq: u32,
    },
    /// A lab meant to outlive its creator (`ironlb-lab up`); never swept.
    Named(String),
}

impl RunId {
    /// A fresh id for a lab owned by this process.
    pub fn fresh() -> RunId {
        RunId::Ephemeral {
            pid: std::process::id(),
            seq: SEQ.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// A named lab id: 1 to 20 characters, lowercase letters and digits, starting with a
    /// letter (so it can never be mistaken for an ephemeral `<pid>-<seq>` id).
    pub fn named(name: &str) -> Result<RunId> {
        let ok = !name.is_empty()
            && name.len() <= 20
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if ok {
            Ok(RunId::Named(name.to_string()))
        } else {
            Err(NetlabError::Invalid(format!(
                "lab name '{name}': use 1-20 lowercase letters and digits, starting with a letter"
            )))
        }
    }

    /// The namespace name for a role (`lan`, `client`, `node1`, ...).
    pub fn netns(&self, role: &str) -> String {
        format!("{PREFIX}{self}-{role}")
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunId::Ephemeral { pid, seq } => write!(f, "{pid}-{seq}"),
            RunId::Named(name) => f.write_str(name),
        }
    }
}

/// Whether a role name is one the lab creates.
pub(crate) fn is_role(role: &str) -> bool {
    role == "lan"
        || role == "client"
        || role
            .strip_prefix("node")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The owning pid of an ephemeral lab namespace name, `None` for anything else.
pub(crate) fn ephemeral_owner(netns: &str) -> Option<u32> {
    let rest = netns.strip_prefix(PREFIX)?;
    let mut parts = rest.splitn(3, '-');
    let pid = parts.next()?;
    let seq = parts.next()?;
    let role = parts.next()?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if digits(pid) && digits(seq) && is_role(role) {
        pid.parse().ok()
    } else {
        None
    }
}

/// Whether a namespace belongs to the named lab `name`.
pub(crate) fn belongs_to_named(netns: &str, name: &str) -> bool {
    netns
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_prefix(name))
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(is_role)
}

/// Whether a process with this pid exists and is not a zombie (a crashed test whose
/// parent has not reaped it yet is dead for our purposes).
pub(crate) fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(process_state(&stat), Some('Z' | 'X')),
        Err(_) => false,
    }
}

/// The state letter of a `/proc/PID/stat` line: the field after the `(comm)`, which may
/// itself contain spaces and parentheses.
fn process_state(stat: &str) -> Option<char> {
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Whether a named network namespace exists (`/run/netns/<name>`).
pub fn netns_exists(name: &str) -> bool {
    std::path::Path::new(NETNS_DIR).join(name).exists()
}

/// All namespace names under `/run/netns` that start with the lab prefix.
pub(crate) fn lab_namespaces() -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(NETNS_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(NetlabError::io(format!("listing {NETNS_DIR}"), e)),
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(PREFIX))
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ephemeral_lab_names_its_namespaces_by_pid_and_sequence() {
        let id = RunId::Ephemeral { pid: 4242, seq: 7 };
        assert_eq!(id.netns("node3"), "ilb-4242-7-node3");
        assert_eq!(ephemeral_owner("ilb-4242-7-node3"), Some(4242));
        assert_eq!(ephemeral_owner("ilb-4242-7-lan"), Some(4242));
        assert_eq!(ephemeral_owner("ilb-4242-7-client"), Some(4242));
    }

    #[test]
    fn names_outside_the_scheme_have_no_owner() {
        for other in [
            "ilb-demo-node1",
            "ilb-4242-node1",
            "ilb-4242-7-router",
            "ilb-4242-7-node",
            "ilb-42a-7-lan",
            "cni-1234-5-lan",
            "ilb-",
        ] {
            assert_eq!(ephemeral_owner(other), None, "{other}");
        }
    }

    #[test]
    fn a_named_lab_owns_only_its_own_roles() {
        assert!(belongs_to_named("ilb-demo-node12", "demo"));
        assert!(belongs_to_named("ilb-demo-lan", "demo"));
        assert!(!belongs_to_named("ilb-demo2-lan", "demo"));
        assert!(!belongs_to_named("ilb-demo-x-lan", "demo"));
        assert!(!belongs_to_named("ilb-4242-7-lan", "demo"));
    }

    #[test]
    fn lab_names_are_short_lowercase_and_start_with_a_letter() {
        assert!(RunId::named("demo").is_ok());
        assert!(RunId::named("lab2").is_ok());
        for bad in ["", "2lab", "Demo", "my-lab", "abcdefghijklmnopqrstu"] {
            assert!(RunId::named(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_process_state_is_read_after_the_command_name() {
        assert_eq!(process_state("123 (sleep) S 1 123"), Some('S'));
        assert_eq!(process_state("124 (a (weird) name) Z 1 124"), Some('Z'));
        assert_eq!(process_state("garbage"), None);
        assert!(pid_alive(std::process::id()));
    }

    #[test]
    fn fresh_ids_differ_within_one_process() {
        assert_ne!(RunId::fresh(), RunId::fresh());
    }
}
