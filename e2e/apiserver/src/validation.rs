//! Generic object validation: names, labels, annotations, the rules every kind shares.

use serde_json::Value;

use crate::error::Cause;

/// RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// RFC 1035 label (must start with a letter), used for Service names.
pub fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

/// Which name rule a kind uses.
pub fn name_rule(kind: &str) -> fn(&str) -> bool {
    match kind {
        "Service" => is_dns1035_label,
        "Namespace" => is_dns1123_label,
        // Events, leases, config maps and secrets accept path-segment-ish names; a subdomain
        // check would reject the `name.hash` forms clients generate only if they contained
        // upper case, which the real server rejects for most kinds too.
        _ => is_dns1123_subdomain,
    }
}

fn name_message(kind: &str) -> &'static str {
    match kind {
        "Service" => "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
        "Namespace" => "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        _ => "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
    }
}

/// Qualified label key: optional DNS subdomain prefix + `/` + name of at most 63 chars.
pub fn is_qualified_name(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    name_ok && prefix.is_none_or(is_dns1123_subdomain)
}

/// Label value: empty, or at most 63 chars of alphanumerics, `-_.`, alphanumeric ends.
pub fn is_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// Metadata checks shared by all kinds.
pub fn validate_metadata(kind: &str, obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let md = obj.get("metadata");
    let name = md
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.is_empty() {
        causes.push(Cause {
            reason: "FieldValueRequired".into(),
            field: "metadata.name".into(),
            message: "Required value: name or generateName is required".into(),
        });
    } else if !name_rule(kind)(name) {
        causes.push(Cause::invalid(
            "metadata.name",
            format!("\"{name}\""),
            name_message(kind),
        ));
    }
    if let Some(labels) = md.and_then(|m| m.get("labels")).and_then(Value::as_object) {
        for (k, v) in labels {
            if !is_qualified_name(k) {
                causes.push(Cause::invalid("metadata.labels", format!("\"{k}\""), "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
            }
            match v.as_str() {
                Some(s) if is_label_value(s) => {}
                _ => causes.push(Cause::invalid("metadata.labels", v, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character")),
            }
        }
    }
    if let Some(ann) = md
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
    {
        for (k, v) in ann {
            if !is_qualified_name(k) {
                causes.push(Cause::invalid(
                    "metadata.annotations",
                    format!("\"{k}\""),
                    "name part must consist of alphanumeric characters, '-', '_' or '.'",
                ));
            }
            if !v.is_string() {
                causes.push(Cause::invalid(
                    format!("metadata.annotations.{k}"),
                    v,
                    "annotation values must be strings",
                ));
            }
        }
    }
    causes
}

/// What the real server requires of a new events.k8s.io/v1 Event.
pub fn validate_events_v1(ev: &Value) -> Vec<Cause> {
    let mut c = Vec::new();
    let s = |k: &str| ev.get(k).and_then(Value::as_str).unwrap_or("");
    if ev.get("eventTime").is_none_or(Value::is_null) {
        c.push(Cause::required("eventTime"));
    }
    for (field, max) in [
        ("reportingController", 253),
        ("reportingInstance", 128),
        ("action", 128),
        ("reason", 128),
    ] {
        let v = s(field);
        if v.is_empty() {
            c.push(Cause::required(field));
        } else if v.len() > max {
            c.push(Cause::invalid(
                field,
                "",
                &format!("can have at most {max} characters"),
            ));
        }
    }
    if !["Normal", "Warning"].contains(&s("type")) {
        c.push(Cause::not_supported(
            "type",
            format!("\"{}\"", s("type")),
            &["Normal", "Warning"],
        ));
    }
    if s("note").len() > 1024 {
        c.push(Cause::invalid(
            "note",
            "",
            "can have at most 1024 characters",
        ));
    }
    if let Some(series) = ev.get("series").filter(|s| !s.is_null()) {
        if series.get("count").and_then(Value::as_i64).unwrap_or(0) < 2 {
            c.push(Cause::invalid(
                "series.count",
                series.get("count").cloned().unwrap_or(Value::Null),
                "should be at least 2",
            ));
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn new_events_need_time_reporter_action_reason_and_a_known_type() {
        let good = json!({"eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "ironlb.io/controller",
            "reportingInstance": "c-0", "action": "Allocate", "reason": "IPAllocated", "type": "Normal", "note": "ok"});
        assert!(validate_events_v1(&good).is_empty());
        let fields: Vec<String> = validate_events_v1(&json!({"type": "Info"}))
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(
            fields,
            [
                "eventTime",
                "reportingController",
                "reportingInstance",
                "action",
                "reason",
                "type"
            ]
        );
    }

    #[test]
    fn names_follow_the_rule_of_their_kind() {
        assert!(is_dns1123_label("web-1"));
        assert!(!is_dns1123_label("Web"));
        assert!(!is_dns1123_label("-web"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_dns1123_subdomain("web.v1.example"));
        assert!(!is_dns1123_subdomain("web..x"));
        assert!(is_dns1035_label("web"));
        assert!(!is_dns1035_label("1web"));
    }

    #[test]
    fn metadata_problems_name_their_field() {
        let ok = json!({"metadata": {"name": "web", "labels": {"app.kubernetes.io/name": "web"}, "annotations": {"x/y": "z"}}});
        assert!(validate_metadata("Service", &ok).is_empty());
        let bad =
            json!({"metadata": {"name": "Web_1", "labels": {"bad key": "v", "k": "bad value"}}});
        let fields: Vec<String> = validate_metadata("Service", &bad)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(
            fields,
            ["metadata.name", "metadata.labels", "metadata.labels"]
        );
        let missing = json!({"metadata": {}});
        assert_eq!(
            validate_metadata("ConfigMap", &missing)[0].reason,
            "FieldValueRequired"
        );
    }
}
