use serde_json::json;

use super::*;

fn svc_lists() -> BuiltinLists {
    BuiltinLists {
        kind: "Service".into(),
    }
}

const NOW: &str = "2026-01-01T00:00:00Z";

#[test]
fn strategic_merge_merges_service_ports_by_port_and_keeps_the_rest() {
    let mut live = json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}});
    let patch = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80, "targetPort": 8080}, {"port": 9000}]}});
    strategic_merge(&mut live, &patch, &svc_lists());
    assert_eq!(live["spec"]["type"], "LoadBalancer");
    assert_eq!(
        live["spec"]["ports"],
        json!([{"port": 80, "name": "http", "targetPort": 8080}, {"port": 443, "name": "https"}, {"port": 9000}])
    );
}

#[test]
fn strategic_merge_deletes_by_directive_and_null() {
    let mut live = json!({"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x"]}, "spec": {"ports": [{"port": 80}, {"port": 81}]}});
    let patch = json!({
        "metadata": {"labels": {"a": null}, "finalizers": ["y"]},
        "spec": {"ports": [{"port": 81, "$patch": "delete"}], "$setElementOrder/ports": [{"port": 80}]}
    });
    strategic_merge(&mut live, &patch, &svc_lists());
    assert_eq!(live["metadata"]["labels"], json!({"b": "2"}));
    assert_eq!(live["metadata"]["finalizers"], json!(["x", "y"]));
    assert_eq!(live["spec"]["ports"], json!([{"port": 80}]));
    let mut live2 = live.clone();
    strategic_merge(
        &mut live2,
        &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}),
        &svc_lists(),
    );
    assert_eq!(live2["metadata"]["finalizers"], json!(["y"]));
}

#[test]
fn strategic_merge_replaces_lists_without_a_merge_key() {
    let mut live = json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"ip": "192.0.2.2"}]}}});
    strategic_merge(
        &mut live,
        &json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.3"}]}}}),
        &svc_lists(),
    );
    assert_eq!(
        live["status"]["loadBalancer"]["ingress"],
        json!([{"ip": "192.0.2.3"}])
    );
}

#[test]
fn json_merge_and_json_patch() {
    let mut v = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
    merge_patch(&mut v, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
    assert_eq!(v, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
    json_patch(
        &mut v,
        &json!([{"op": "add", "path": "/l/-", "value": 4}, {"op": "remove", "path": "/a/c"}]),
    )
    .unwrap();
    assert_eq!(v, json!({"a": {"d": 3}, "l": [3, 4]}));
    assert!(json_patch(&mut v, &json!([{"op": "remove", "path": "/nope"}])).is_err());
}

#[test]
fn apply_merges_conditions_by_type_and_a_reapply_without_one_removes_it() {
    let live = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "status": {"conditions": [{"type": "Foreign", "status": "True"}]}});
    let first = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Degraded", "status": "False"}]}});
    let after1 = server_side_apply(
        Some(&live),
        &first,
        "ctl",
        Some("status"),
        "v1",
        NOW,
        true,
        &svc_lists(),
    )
    .unwrap();
    let types: Vec<&str> = after1["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["Foreign", "Ready", "Degraded"]);
    assert_eq!(after1["metadata"]["managedFields"][0]["manager"], "ctl");
    assert_eq!(
        after1["metadata"]["managedFields"][0]["subresource"],
        "status"
    );

    let second = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}});
    let after2 = server_side_apply(
        Some(&after1),
        &second,
        "ctl",
        Some("status"),
        "v1",
        NOW,
        true,
        &svc_lists(),
    )
    .unwrap();
    assert_eq!(
        after2["status"]["conditions"],
        json!([{"type": "Foreign", "status": "True"}, {"type": "Ready", "status": "False"}])
    );
}

#[test]
fn apply_removes_a_field_the_same_manager_stopped_applying_but_not_others_fields() {
    let a1 =
        json!({"metadata": {"labels": {"mine": "1", "shared": "1"}}, "spec": {"x": 1, "y": 2}});
    let obj = server_side_apply(None, &a1, "a", None, "v1", NOW, true, &svc_lists()).unwrap();
    let b = json!({"metadata": {"labels": {"shared": "1"}}});
    let obj = server_side_apply(Some(&obj), &b, "b", None, "v1", NOW, true, &svc_lists()).unwrap();
    let a2 = json!({"spec": {"x": 1}});
    let obj = server_side_apply(Some(&obj), &a2, "a", None, "v1", NOW, true, &svc_lists()).unwrap();
    assert_eq!(obj["metadata"]["labels"], json!({"shared": "1"}));
    assert_eq!(obj["spec"], json!({"x": 1}));
    assert_eq!(
        obj["metadata"]["managedFields"].as_array().unwrap().len(),
        2
    );
}

#[test]
fn apply_keeps_fields_nobody_applied() {
    let live = json!({"spec": {"clusterIP": "198.18.0.10", "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30001}]}});
    let cfg = json!({"spec": {"ports": [{"port": 80, "protocol": "TCP", "name": "http"}]}});
    let obj =
        server_side_apply(Some(&live), &cfg, "m", None, "v1", NOW, true, &svc_lists()).unwrap();
    assert_eq!(obj["spec"]["clusterIP"], "198.18.0.10");
    assert_eq!(
        obj["spec"]["ports"],
        json!([{"port": 80, "protocol": "TCP", "nodePort": 30001, "name": "http"}])
    );
    let fields = &obj["metadata"]["managedFields"][0]["fieldsV1"];
    assert!(
        fields["f:spec"]["f:ports"]["k:{\"port\":80,\"protocol\":\"TCP\"}"]["f:name"].is_object(),
        "{fields}"
    );
}

#[test]
fn schema_list_types_come_from_the_crd_schema() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"], "items": {"type": "object"}},
        "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}
    }}}});
    let lists = SchemaLists { schema: &schema };
    assert_eq!(
        lists.list_type(&["spec".into(), "items".into()]),
        ListType::Map(vec!["id".into()])
    );
    assert_eq!(
        lists.list_type(&["spec".into(), "tags".into()]),
        ListType::Set
    );
    assert_eq!(
        lists.list_type(&["spec".into(), "other".into()]),
        ListType::Atomic
    );
    assert_eq!(
        lists.list_type(&["status".into(), "conditions".into()]),
        ListType::Map(vec!["type".into()])
    );
}

#[test]
fn bodies_decode_from_json_or_yaml() {
    assert_eq!(decode_body(b"{\"a\":1}").unwrap(), json!({"a": 1}));
    assert_eq!(
        decode_body(b"a: 1\nb: [x]\n").unwrap(),
        json!({"a": 1, "b": ["x"]})
    );
    assert!(decode_body(b"  ").is_err());
}

#[test]
fn apply_without_force_conflicts_on_another_managers_differing_field_and_force_takes_it() {
    let obj = server_side_apply(
        None,
        &json!({"spec": {"x": 1, "y": 1}}),
        "a",
        None,
        "v1",
        NOW,
        false,
        &svc_lists(),
    )
    .unwrap();
    // Same value: shared ownership, no conflict.
    let obj = server_side_apply(
        Some(&obj),
        &json!({"spec": {"y": 1}}),
        "b",
        None,
        "v1",
        NOW,
        false,
        &svc_lists(),
    )
    .unwrap();
    let err = server_side_apply(
        Some(&obj),
        &json!({"spec": {"x": 2}}),
        "b",
        None,
        "v1",
        NOW,
        false,
        &svc_lists(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        vec![Conflict {
            manager: "a".into(),
            path: ".spec.x".into()
        }]
    );
    let obj = server_side_apply(
        Some(&obj),
        &json!({"spec": {"x": 2}}),
        "b",
        None,
        "v1",
        NOW,
        true,
        &svc_lists(),
    )
    .unwrap();
    assert_eq!(obj["spec"], json!({"x": 2, "y": 1}));
    // "a" no longer owns x: when b stops applying it, it goes.
    let obj = server_side_apply(
        Some(&obj),
        &json!({"spec": {"y": 1}}),
        "b",
        None,
        "v1",
        NOW,
        false,
        &svc_lists(),
    )
    .unwrap();
    assert_eq!(obj["spec"], json!({"y": 1}));
}
