//! Server-side printing (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), what
//! `kubectl get` asks for: the columns the real server prints for Services, a CRD's
//! `additionalPrinterColumns`, and NAME/AGE for everything else.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::registry::ResourceInfo;

fn col(name: &str, ty: &str, priority: u8) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": ty, "format": format, "description": name, "priority": priority})
}

/// Human age as kubectl prints it: `42s`, `7m`, `3h`, `5d`.
pub fn age(created: Option<&str>, now: DateTime<Utc>) -> String {
    let Some(t) = created.and_then(|c| DateTime::parse_from_rfc3339(c).ok()) else {
        return "<unknown>".into();
    };
    let secs = (now - t.with_timezone(&Utc)).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn selector(obj: &Value) -> String {
    match obj.pointer("/spec/selector").and_then(Value::as_object) {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(","),
        _ => "<none>".into(),
    }
}

fn service_cells(obj: &Value) -> Vec<Value> {
    let ty = s(obj, "/spec/type");
    let cip = match s(obj, "/spec/clusterIP") {
        "" => "<none>",
        c => c,
    };
    let ingress: Vec<String> = obj
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|i| {
                    i.get("ip")
                        .or(i.get("hostname"))
                        .and_then(Value::as_str)
                        .map(String::from)
                })
                .collect()
        })
        .unwrap_or_default();
    let external = if !ingress.is_empty() {
        ingress.join(",")
    } else if ty == "LoadBalancer" {
        "<pending>".into()
    } else if ty == "ExternalName" {
        s(obj, "/spec/externalName").to_string()
    } else {
        "<none>".into()
    };
    let ports: Vec<String> = obj
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|p| {
                    let port = p.get("port").and_then(Value::as_u64).unwrap_or(0);
                    let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                    match p.get("nodePort").and_then(Value::as_u64) {
                        Some(np) => format!("{port}:{np}/{proto}"),
                        None => format!("{port}/{proto}"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let ports = if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    };
    vec![json!(ty), json!(cip), json!(external), json!(ports)]
}

/// The `PartialObjectMetadata` form of an object (`Accept: ...;as=PartialObjectMetadata`).
pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// Server-side columns of a built-in kind: (name, priority) before Age, their cells,
/// then wide-only columns after Age and their cells.
struct Printer {
    columns: &'static [&'static str],
    cells: fn(&Value) -> Vec<Value>,
    wide: &'static [&'static str],
    wide_cells: fn(&Value) -> Vec<Value>,
}

fn none(_: &Value) -> Vec<Value> {
    Vec::new()
}

fn ingress_cells(obj: &Value) -> Vec<Value> {
    let class = match s(obj, "/spec/ingressClassName") {
        "" => "<none>",
        c => c,
    };
    let hosts: Vec<String> = obj
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .map(|rule| match rule.get("host").and_then(Value::as_str) {
                    Some(h) if !h.is_empty() => h.to_string(),
                    _ => "*".to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    let hosts = if hosts.is_empty() {
        "*".to_string()
    } else {
        hosts.join(",")
    };
    let address: Vec<String> = obj
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|i| {
                    i.get("ip")
                        .or(i.get("hostname"))
                        .and_then(Value::as_str)
                        .map(String::from)
                })
                .collect()
        })
        .unwrap_or_default();
    let tls = obj
        .pointer("/spec/tls")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    vec![
        json!(class),
        json!(hosts),
        json!(address.join(",")),
        json!(if tls { "80, 443" } else { "80" }),
    ]
}

fn node_cells(obj: &Value) -> Vec<Value> {
    let ready = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| {
            c.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        })
        .and_then(|c| c.get("status").and_then(Value::as_str));
    let status = match ready {
        Some("True") => "Ready",
        Some("False") => "NotReady",
        _ => "Unknown",
    };
    let roles: Vec<&str> = obj
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|l| {
            l.keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                .collect()
        })
        .unwrap_or_default();
    vec![
        json!(status),
        json!(if roles.is_empty() {
            "<none>".to_string()
        } else {
            roles.join(",")
        }),
    ]
}

fn pod_cells(obj: &Value) -> Vec<Value> {
    let total = obj
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let ready = obj
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map_or(0, |c| {
            c.iter()
                .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
                .count()
        });
    let restarts: u64 = obj
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map_or(0, |c| {
            c.iter()
                .filter_map(|c| c.get("restartCount").and_then(Value::as_u64))
                .sum()
        });
    vec![
        json!(format!("{ready}/{total}")),
        json!(s(obj, "/status/phase")),
        json!(restarts),
    ]
}

fn pod_wide(obj: &Value) -> Vec<Value> {
    let or_none = |v: &str| {
        if v.is_empty() {
            "<none>".to_string()
        } else {
            v.to_string()
        }
    };
    vec![
        json!(or_none(s(obj, "/status/podIP"))),
        json!(or_none(s(obj, "/spec/nodeName"))),
    ]
}

fn lease_cells(obj: &Value) -> Vec<Value> {
    vec![json!(s(obj, "/spec/holderIdentity"))]
}

fn service_wide(obj: &Value) -> Vec<Value> {
    vec![json!(selector(obj))]
}

fn service_row(obj: &Value) -> Vec<Value> {
    service_cells(obj)
}

fn printer(info: &ResourceInfo) -> Option<Printer> {
    let p = |columns, cells, wide, wide_cells| {
        Some(Printer {
            columns,
            cells,
            wide,
            wide_cells,
        })
    };
    match (info.group.as_str(), info.kind.as_str()) {
        ("", "Service") => p(
            &["Type", "Cluster-IP", "External-IP", "Port(s)"],
            service_row,
            &["Selector"],
            service_wide,
        ),
        ("networking.k8s.io", "Ingress") => p(
            &["Class", "Hosts", "Address", "Ports"],
            ingress_cells,
            &[],
            none,
        ),
        ("", "Node") => p(&["Status", "Roles"], node_cells, &[], none),
        ("", "Pod") => p(
            &["Ready", "Status", "Restarts"],
            pod_cells,
            &["IP", "Node"],
            pod_wide,
        ),
        ("coordination.k8s.io", "Lease") => p(&["Holder"], lease_cells, &[], none),
        _ => None,
    }
}

/// A Table of `items` (already in the requested version's form).
pub fn table(
    info: &ResourceInfo,
    items: &[Value],
    list_meta: Option<Value>,
    _unused: Option<()>,
) -> Value {
    let now = Utc::now();
    let printer = printer(info);
    let mut columns = vec![col("Name", "string", 0)];
    if let Some(p) = &printer {
        columns.extend(p.columns.iter().map(|c| col(c, "string", 0)));
    }
    for c in &info.printer_columns {
        let name = c.get("name").and_then(Value::as_str).unwrap_or("");
        let ty = c.get("type").and_then(Value::as_str).unwrap_or("string");
        let priority = c.get("priority").and_then(Value::as_u64).unwrap_or(0) as u8;
        columns.push(col(name, ty, priority));
    }
    let has_age = info
        .printer_columns
        .iter()
        .any(|c| c.get("name").and_then(Value::as_str) == Some("Age"));
    if !has_age {
        columns.push(col("Age", "string", 0));
    }
    if let Some(p) = &printer {
        columns.extend(p.wide.iter().map(|c| col(c, "string", 1)));
    }
    let rows: Vec<Value> = items
        .iter()
        .map(|obj| {
            let mut cells = vec![json!(s(obj, "/metadata/name"))];
            if let Some(p) = &printer {
                cells.extend((p.cells)(obj));
            }
            for c in &info.printer_columns {
                let path = c.get("jsonPath").and_then(Value::as_str).unwrap_or("");
                if path == ".metadata.creationTimestamp" {
                    cells.push(json!(age(obj.pointer("/metadata/creationTimestamp").and_then(Value::as_str), now)));
                } else {
                    cells.extend(crate::crd::printer_cells(std::slice::from_ref(c), obj));
                }
            }
            if !has_age {
                cells.push(json!(age(obj.pointer("/metadata/creationTimestamp").and_then(Value::as_str), now)));
            }
            if let Some(p) = &printer {
                cells.extend((p.wide_cells)(obj));
            }
            json!({
                "cells": cells,
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))},
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta.unwrap_or(json!({})),
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::builtins;

    #[test]
    fn a_service_row_reads_like_kubectl_get_svc() {
        let info = builtins()
            .into_iter()
            .find(|r| r.kind == "Service")
            .unwrap();
        let svc = json!({"metadata": {"name": "web", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"type": "LoadBalancer", "clusterIP": "198.18.0.2", "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30000}]},
            "status": {"loadBalancer": {}}});
        let t = table(&info, &[svc], None, None);
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[0], "web");
        assert_eq!(cells[1], "LoadBalancer");
        assert_eq!(cells[3], "<pending>");
        assert_eq!(cells[4], "80:30000/TCP");
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 7);
        assert_eq!(cells[6], "<none>");
    }

    #[test]
    fn ingress_and_pod_rows() {
        let ing = builtins()
            .into_iter()
            .find(|r| r.kind == "Ingress")
            .unwrap();
        let obj = json!({"metadata": {"name": "site"}, "spec": {"ingressClassName": "ironlb", "rules": [{"host": "a.example"}, {}], "tls": [{}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}});
        let t = table(&ing, &[obj], None, None);
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "site",
                "ironlb",
                "a.example,*",
                "192.0.2.10",
                "80, 443",
                "<unknown>"
            ])
        );
        let pod = builtins().into_iter().find(|r| r.kind == "Pod").unwrap();
        let obj = json!({"metadata": {"name": "p"}, "spec": {"containers": [{}, {}], "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "192.0.2.50", "containerStatuses": [{"ready": true, "restartCount": 1}, {"ready": false, "restartCount": 0}]}});
        let t = table(&pod, &[obj], None, None);
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["p", "1/2", "Running", 1, "<unknown>", "192.0.2.50", "n1"])
        );
    }

    #[test]
    fn ages_are_short() {
        let now = DateTime::parse_from_rfc3339("2020-01-02T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(age(Some("2020-01-01T23:59:30Z"), now), "30s");
        assert_eq!(age(Some("2020-01-01T00:00:00Z"), now), "24h");
        assert_eq!(age(None, now), "<unknown>");
    }
}
