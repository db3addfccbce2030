//! Conversion between the stored form of an object and the form of the version a client
//! asked for: custom resources only change `apiVersion`; Events are stored as core/v1
//! Events and converted to and from `events.k8s.io/v1` as the real server does.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::registry::ResourceInfo;

/// Field renames between events.k8s.io/v1 (left) and core/v1 (right).
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn is_events_v1(info: &ResourceInfo) -> bool {
    info.group == "events.k8s.io" && info.plural == "events"
}

fn rename(obj: Value, from_events_v1: bool) -> Value {
    let Value::Object(m) = obj else { return obj };
    let mut out = Map::new();
    for (k, v) in m {
        let renamed = EVENT_FIELDS.iter().find_map(|(ev1, core)| {
            if from_events_v1 && k == *ev1 {
                Some(*core)
            } else if !from_events_v1 && k == *core {
                Some(*ev1)
            } else {
                None
            }
        });
        out.insert(renamed.map(String::from).unwrap_or(k), v);
    }
    Value::Object(out)
}

/// Request form → stored form.
pub fn to_storage(info: &ResourceInfo, obj: Value) -> Value {
    if is_events_v1(info) {
        let mut v = rename(obj, true);
        v["apiVersion"] = Value::from("v1");
        v["kind"] = Value::from("Event");
        v
    } else {
        obj
    }
}

/// Stored form → the form of the version in `info`.
pub fn from_storage<'a>(info: &ResourceInfo, obj: &'a Value) -> Cow<'a, Value> {
    if is_events_v1(info) {
        let mut v = rename(obj.clone(), false);
        v["apiVersion"] = Value::from("events.k8s.io/v1");
        return Cow::Owned(v);
    }
    let want = info.api_version();
    if obj.get("apiVersion").and_then(Value::as_str) == Some(want.as_str()) {
        Cow::Borrowed(obj)
    } else {
        let mut v = obj.clone();
        v["apiVersion"] = Value::from(want);
        v["kind"] = Value::from(info.kind.clone());
        Cow::Owned(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::builtins;
    use serde_json::json;

    #[test]
    fn events_round_trip_between_the_two_groups() {
        let ev1 = builtins()
            .into_iter()
            .find(|r| r.group == "events.k8s.io")
            .unwrap();
        let original = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "regarding": {"kind": "Service", "name": "web"}, "note": "allocated", "reason": "IPAllocated",
            "reportingController": "ironlb.io/controller", "type": "Normal"});
        let stored = to_storage(&ev1, original.clone());
        assert_eq!(stored["apiVersion"], "v1");
        assert_eq!(stored["involvedObject"]["name"], "web");
        assert_eq!(stored["message"], "allocated");
        assert_eq!(stored["reportingComponent"], "ironlb.io/controller");
        assert_eq!(from_storage(&ev1, &stored).into_owned(), original);
    }
}
