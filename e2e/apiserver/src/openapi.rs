//! A minimal OpenAPI v3 (`/openapi/v3`, `/openapi/v3/<group-version>`): just enough for
//! kubectl to see that every served kind accepts the `fieldValidation` query parameter,
//! so `kubectl create/apply` validate on the server instead of downloading schemas.

use serde_json::{json, Map, Value};

use crate::registry::{Registry, ResourceInfo};

/// `api/v1` or `apis/<group>/<version>`.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn fnv(s: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016X}")
}

fn operation(info: &ResourceInfo, verb: &str) -> Value {
    json!({
        "operationId": format!("{verb}{}", info.kind),
        "x-kubernetes-action": verb,
        "x-kubernetes-group-version-kind": {"group": info.group, "version": info.version, "kind": info.kind},
        "parameters": [
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
        ],
        "responses": {"200": {"description": "OK"}},
    })
}

/// The document of one group-version.
pub fn gv_doc(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    if !reg.has_version(group, version) {
        return None;
    }
    let mut paths = Map::new();
    for info in reg
        .all()
        .filter(|i| i.group == group && i.version == version)
    {
        let base = format!("/{}", gv_path(group, version));
        let collection = if info.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", info.plural)
        } else {
            format!("{base}/{}", info.plural)
        };
        paths.insert(collection.clone(), json!({"post": operation(info, "post")}));
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({"put": operation(info, "put"), "patch": operation(info, "patch")}),
        );
        if info.status_subresource {
            paths.insert(
                format!("{collection}/{{name}}/status"),
                json!({"put": operation(info, "put"), "patch": operation(info, "patch")}),
            );
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

/// `/openapi/v3`: one entry per group-version, with a content hash in the URL.
pub fn root(reg: &Registry) -> Value {
    let mut gvs: Vec<(String, String)> = reg
        .all()
        .map(|i| (i.group.clone(), i.version.clone()))
        .collect();
    gvs.sort();
    gvs.dedup();
    let mut paths = Map::new();
    for (g, v) in gvs {
        let doc = gv_doc(reg, &g, &v).unwrap_or_default();
        let p = gv_path(&g, &v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", fnv(&doc.to_string()))}),
        );
    }
    json!({"paths": paths})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_patch_operation_with_field_validation() {
        let reg = Registry::with_builtins();
        let r = root(&reg);
        assert!(r["paths"]["api/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap()
            .starts_with("/openapi/v3/api/v1?hash="));
        let doc = gv_doc(&reg, "", "v1").unwrap();
        let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/services/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Service");
        assert!(patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation"));
        assert!(gv_doc(&reg, "nope", "v1").is_none());
    }
}
