//! Events on Services (events.k8s.io/v1), one per decision.
//!
//! Written directly rather than through `kube::runtime::events::Recorder`: the
//! Recorder folds events with the same reason on the same object into a series that
//! keeps the *first* note, so a second `IPAllocated` (after a pool shrink) would
//! still show the old address. The controller only emits on change anyway.

use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

/// Reporting controller of every Event.
pub const REPORTER: &str = "ironlb-controller";

/// Normal or Warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Something happened as asked.
    Normal,
    /// Something the user should look at.
    Warning,
}

/// One Event to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Normal or Warning.
    pub kind: Kind,
    /// CamelCase reason (`IPAllocated`, `AllocationFailed`, ...).
    pub reason: &'static str,
    /// What was attempted (`Allocate`, `Release`, ...).
    pub action: &'static str,
    /// The human message.
    pub note: String,
}

impl Note {
    /// A Normal event.
    pub fn normal(reason: &'static str, action: &'static str, note: String) -> Note {
        Note {
            kind: Kind::Normal,
            reason,
            action,
            note,
        }
    }
    /// A Warning event.
    pub fn warning(reason: &'static str, action: &'static str, note: String) -> Note {
        Note {
            kind: Kind::Warning,
            reason,
            action,
            note,
        }
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Creates `note` as an Event regarding `regarding`.
pub async fn publish(
    client: &kube::Client,
    instance: &str,
    regarding: &ObjectReference,
    note: &Note,
) -> Result<(), kube::Error> {
    let now = Timestamp::now();
    let ns = regarding
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = format!(
        "{}.{:x}{:x}",
        regarding.name.as_deref().unwrap_or(REPORTER),
        now.as_nanosecond(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let mut text = note.note.clone();
    if text.len() > 1000 {
        let mut cut = 1000;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    let ev = Event {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        action: Some(note.action.to_string()),
        reason: Some(note.reason.to_string()),
        note: Some(text),
        event_time: Some(MicroTime(now)),
        regarding: Some(regarding.clone()),
        reporting_controller: Some(REPORTER.to_string()),
        reporting_instance: Some(instance.to_string()),
        type_: Some(
            match note.kind {
                Kind::Normal => "Normal",
                Kind::Warning => "Warning",
            }
            .to_string(),
        ),
        ..Default::default()
    };
    Api::<Event>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &ev)
        .await
        .map(|_| ())
}
