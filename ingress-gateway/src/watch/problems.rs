//! Problems found while building a snapshot (compiler diagnostics, bad TLS Secrets),
//! turned into Warning Events on the Ingress concerned. Every build reports every current
//! problem again; [`Dedupe`] keeps the last set so that an Event is published only for a
//! problem that is new.

use std::collections::HashSet;

use ironlb_routes::{Diagnostic, IngressRef};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// Event reason for a TLS Secret that is missing or not a certificate + key.
pub const INVALID_TLS_SECRET: &str = "InvalidTLSSecret";

/// One problem on one Ingress.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Problem {
    /// The Ingress the Event is attached to.
    pub ingress: IngressRef,
    /// The Event reason (CamelCase).
    pub reason: String,
    /// The Event note.
    pub message: String,
}

impl From<Diagnostic> for Problem {
    fn from(d: Diagnostic) -> Problem {
        Problem {
            ingress: d.ingress,
            reason: d.reason.as_str().to_string(),
            message: d.message,
        }
    }
}

/// The problems of the previous build.
#[derive(Debug, Default)]
pub struct Dedupe {
    last: HashSet<Problem>,
}

impl Dedupe {
    /// Records this build's problems and returns those the previous build did not have
    /// (sorted, so Events come out in a stable order).
    pub fn new_problems(&mut self, current: impl IntoIterator<Item = Problem>) -> Vec<Problem> {
        let current: HashSet<Problem> = current.into_iter().collect();
        let mut new: Vec<Problem> = current.difference(&self.last).cloned().collect();
        new.sort();
        self.last = current;
        new
    }
}

/// Publishes Warning Events as `ironlb-gateway`.
///
/// Each Event goes through a fresh [`Recorder`]: a shared one folds Events with the same
/// reason on the same object into one series that keeps the *first* note, so a second,
/// different invalid path would only bump a counter. [`Dedupe`] already keeps repeats out.
#[derive(Clone)]
pub struct EventSink {
    client: kube::Client,
    reporter: Reporter,
}

impl EventSink {
    /// A sink whose Events name `ironlb-gateway` as reporting controller and the pod (or
    /// host) name as instance.
    pub fn new(client: kube::Client) -> EventSink {
        let instance = std::env::var("POD_NAME")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok());
        let reporter = Reporter {
            controller: super::status::FIELD_MANAGER.to_string(),
            instance,
        };
        EventSink { client, reporter }
    }

    /// Publishes one Warning Event about `problem` on the Ingress `regarding`.
    pub async fn warn(&self, problem: &Problem, regarding: &ObjectReference) {
        let event = Event {
            type_: EventType::Warning,
            reason: problem.reason.clone(),
            note: Some(truncate(&problem.message, 1000)),
            action: "Route".into(),
            secondary: None,
        };
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        if let Err(error) = recorder.publish(&event, regarding).await {
            tracing::warn!(%error, ingress = %problem.ingress, reason = %problem.reason, "cannot publish Event");
        }
    }
}

// The Events API caps a note at 1 kB.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(name: &str, reason: &str) -> Problem {
        Problem {
            ingress: IngressRef::new("shop", name),
            reason: reason.into(),
            message: format!("{reason} on {name}"),
        }
    }

    #[test]
    fn a_problem_is_reported_once_while_it_lasts_and_again_after_it_went_away() {
        let mut dedupe = Dedupe::default();
        let bad_path = problem("web", "InvalidPath");
        let snippet = problem("web", "SnippetRefused");
        assert_eq!(
            dedupe.new_problems([bad_path.clone()]),
            vec![bad_path.clone()]
        );
        assert_eq!(
            dedupe.new_problems([bad_path.clone(), snippet.clone()]),
            vec![snippet.clone()]
        );
        assert!(dedupe
            .new_problems([bad_path.clone(), snippet.clone()])
            .is_empty());
        assert!(dedupe.new_problems([]).is_empty());
        assert_eq!(dedupe.new_problems([bad_path.clone()]), [bad_path]);
    }

    #[test]
    fn long_notes_are_cut_on_a_character_boundary() {
        let long = "é".repeat(600);
        let cut = truncate(&long, 1000);
        assert!(cut.len() <= 1000 + "…".len());
        assert!(cut.ends_with('…'));
    }
}
