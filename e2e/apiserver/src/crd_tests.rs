use serde_json::json;

use super::*;

fn pool_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "ippools.ironlb.io"},
        "spec": {
            "group": "ironlb.io",
            "names": {"kind": "IPPool", "plural": "ippools", "singular": "ippool", "shortNames": ["ipp"]},
            "scope": "Cluster",
            "versions": [{
                "name": "v1alpha1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [{"name": "Auto", "type": "boolean", "jsonPath": ".spec.autoAssign"}],
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "required": ["addresses"], "properties": {
                        "addresses": {"type": "array", "items": {"type": "string"}},
                        "autoAssign": {"type": "boolean", "default": true},
                        "mode": {"type": "string", "enum": ["L2", "BGP"]},
                        "port": {"x-kubernetes-int-or-string": true},
                        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "maybe": {"type": "string", "nullable": true}
                    }},
                    "status": {"type": "object", "properties": {"used": {"type": "integer", "minimum": 0}}}
                }}}
            }]
        }
    })
}

#[test]
fn a_crd_serves_one_resource_per_served_version() {
    assert!(validate(&pool_crd()).is_empty());
    let (resources, storage) = resources_of(&pool_crd());
    assert_eq!(storage, "v1alpha1");
    assert_eq!(resources.len(), 1);
    let r = &resources[0];
    assert_eq!(
        (r.group.as_str(), r.plural.as_str(), r.kind.as_str()),
        ("ironlb.io", "ippools", "IPPool")
    );
    assert!(!r.namespaced && r.status_subresource && r.custom);
    assert_eq!(r.short_names, ["ipp"]);
    let status = established_status(&pool_crd(), "t");
    assert_eq!(status["conditions"][1]["type"], "Established");
    assert_eq!(status["acceptedNames"]["listKind"], "IPPoolList");
}

#[test]
fn a_misnamed_crd_is_invalid() {
    let mut crd = pool_crd();
    crd["metadata"]["name"] = json!("pools.ironlb.io");
    assert_eq!(validate(&crd)[0].field, "metadata.name");
}

#[test]
fn pruning_drops_unknown_fields_and_defaulting_fills_missing_ones() {
    let schema = pool_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
    let mut obj = json!({
        "apiVersion": "ironlb.io/v1alpha1", "kind": "IPPool", "metadata": {"name": "lan", "labels": {"a": "b"}},
        "spec": {"addresses": ["192.0.2.0/24"], "bogus": 1, "extra": {"anything": {"goes": 1}}, "maybe": null, "mode": null},
        "unknownTop": true
    });
    prune_and_default(&mut obj, &schema);
    assert_eq!(
        obj["spec"],
        json!({"addresses": ["192.0.2.0/24"], "autoAssign": true, "extra": {"anything": {"goes": 1}}, "maybe": null})
    );
    assert!(obj.get("unknownTop").is_none());
    assert_eq!(obj["metadata"]["labels"]["a"], "b");
}

#[test]
fn type_errors_name_the_field() {
    let schema = pool_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
    let obj = json!({"spec": {"addresses": [1], "autoAssign": "yes", "mode": "OSPF", "port": 80}, "status": {"used": -1}});
    let fields: Vec<String> = validate_object(&obj, &schema)
        .into_iter()
        .map(|c| c.field)
        .collect();
    assert_eq!(
        fields,
        [
            "spec.addresses[0]",
            "spec.autoAssign",
            "spec.mode",
            "status.used"
        ]
    );
    let missing = json!({"spec": {}});
    assert_eq!(
        validate_object(&missing, &schema)[0].field,
        "spec.addresses"
    );
}

#[test]
fn printer_cells_follow_json_paths() {
    let cols = pool_crd()["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        printer_cells(&cols, &json!({"spec": {"autoAssign": false}})),
        vec![json!(false)]
    );
    // A filter expression, as the Ready column of a real CRD has.
    let ready = vec![json!({"name": "Ready", "type": "string",
        "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"})];
    assert_eq!(
        printer_cells(
            &ready,
            &json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
        ),
        vec![json!("True")]
    );
}

#[test]
fn jsonpath_covers_what_printer_columns_use() {
    let obj = json!({"spec": {"addresses": ["192.0.2.0/24", "2001:db8::/64"]},
        "status": {"conditions": [{"type": "Degraded", "status": "False"}, {"type": "Ready", "status": "True"}]}});
    assert_eq!(
        jsonpath(&obj, ".status.conditions[?(@.type==\"Ready\")].status"),
        Some(json!("True"))
    );
    assert_eq!(
        jsonpath(&obj, ".spec.addresses[1]"),
        Some(json!("2001:db8::/64"))
    );
    assert_eq!(
        jsonpath(&obj, ".spec.addresses"),
        Some(json!(["192.0.2.0/24", "2001:db8::/64"]))
    );
    assert_eq!(
        jsonpath(&obj, ".status.conditions[*].type"),
        Some(json!("Degraded"))
    );
    assert_eq!(jsonpath(&obj, ".status.missing"), None);
}

#[test]
fn patterns_are_enforced() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "cidr": {"type": "string", "pattern": "^[0-9a-f:.]+/[0-9]{1,3}$"}
    }}}});
    assert!(validate_object(&json!({"spec": {"cidr": "192.0.2.0/24"}}), &schema).is_empty());
    let causes = validate_object(&json!({"spec": {"cidr": "lan"}}), &schema);
    assert_eq!(causes[0].field, "spec.cidr");
    assert!(causes[0].message.contains("should match"));
}
