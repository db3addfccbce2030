use super::*;
use crate::L2Announcement;
use kube::CustomResourceExt;
use serde_json::{json, Value};

fn spec_schema_of(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    let schema = crd.spec.versions[0]
        .schema
        .clone()
        .unwrap()
        .open_api_v3_schema
        .unwrap();
    serde_json::to_value(schema).unwrap()
}

#[test]
fn ippool_crd_is_cluster_scoped_in_ironlb_io_v1alpha1() {
    let crd = IPPool::crd();
    assert_eq!(crd.metadata.name.as_deref(), Some("ippools.ironlb.io"));
    assert_eq!(crd.spec.scope, "Cluster");
    assert_eq!(crd.spec.versions[0].name, "v1alpha1");
    assert!(crd.spec.versions[0]
        .subresources
        .as_ref()
        .unwrap()
        .status
        .is_some());
}

#[test]
fn addresses_carry_cel_rules_a_pattern_and_a_minimum_of_one() {
    let schema = spec_schema_of(&IPPool::crd());
    let addresses = &schema["properties"]["spec"]["properties"]["addresses"];
    assert_eq!(addresses["minItems"], json!(1));
    assert_eq!(addresses["items"]["pattern"], json!(ADDRESS_PATTERN));
    let rules: Vec<&str> = addresses["x-kubernetes-validations"]
        .as_array()
        .expect("x-kubernetes-validations on addresses")
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"size(self) > 0"));
    assert!(rules.contains(&ADDRESSES_CEL_RULE));
    assert!(ADDRESSES_CEL_RULE.contains("isCIDR(") && ADDRESSES_CEL_RULE.contains("isIP("));
}

#[test]
fn auto_assign_defaults_to_true_and_avoid_buggy_ips_to_false() {
    let schema = spec_schema_of(&IPPool::crd());
    let props = &schema["properties"]["spec"]["properties"];
    assert_eq!(props["autoAssign"]["default"], json!(true));
    assert_eq!(props["avoidBuggyIPs"]["default"], json!(false));
    assert_eq!(props["priority"]["default"], json!(0));
}

#[test]
fn status_conditions_merge_by_type() {
    let schema = spec_schema_of(&IPPool::crd());
    let conditions = &schema["properties"]["status"]["properties"]["conditions"];
    assert_eq!(conditions["x-kubernetes-list-type"], json!("map"));
    assert_eq!(conditions["x-kubernetes-list-map-keys"], json!(["type"]));
}

#[test]
fn printer_columns_show_counts_and_readiness() {
    let crd = IPPool::crd();
    let names: Vec<String> = crd.spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(
        names,
        [
            "Addresses",
            "Auto Assign",
            "Assigned v4",
            "Assigned v6",
            "Available v4",
            "Available v6",
            "Ready",
            "Age"
        ]
    );
}

#[test]
fn a_minimal_pool_deserializes_with_defaults() {
    let pool: IPPool = serde_json::from_value(json!({
        "apiVersion": "ironlb.io/v1alpha1",
        "kind": "IPPool",
        "metadata": {"name": "lan"},
        "spec": {"addresses": ["192.0.2.0/24", "2001:db8::/64"]}
    }))
    .unwrap();
    assert!(pool.spec.auto_assign);
    assert!(!pool.spec.avoid_buggy_ips);
    assert_eq!(pool.spec.priority, 0);
    assert_eq!(pool.spec.service_selector, None);
}

#[test]
fn a_full_pool_round_trips_through_json_and_yaml() {
    let mut pool = IPPool::new(
        "lan",
        IPPoolSpec {
            addresses: vec!["192.0.2.10-192.0.2.20".into(), "2001:db8::/64".into()],
            auto_assign: false,
            avoid_buggy_ips: true,
            service_selector: Some(LabelSelector {
                match_labels: Some([("tier".to_string(), "web".to_string())].into()),
                ..Default::default()
            }),
            namespace_selector: None,
            priority: -5,
        },
    );
    pool.status = Some(IPPoolStatus {
        assigned_ipv4: 3,
        available_ipv6: "18446744073709551616".into(),
        excluded_node_ips: vec!["192.0.2.11".into()],
        ..Default::default()
    });
    let json = serde_json::to_value(&pool).unwrap();
    assert_eq!(json["spec"]["avoidBuggyIPs"], json!(true));
    assert_eq!(json["status"]["assignedIPv4"], json!(3));
    assert_eq!(json["status"]["excludedNodeIPs"], json!(["192.0.2.11"]));
    let back: IPPool = serde_json::from_value(json).unwrap();
    assert_eq!(back.spec, pool.spec);
    assert_eq!(back.status, pool.status);
    let yaml = serde_yaml::to_string(&pool).unwrap();
    let back: IPPool = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(back.spec, pool.spec);
}

#[test]
fn l2announcement_round_trips_and_validates_interfaces() {
    let ann: L2Announcement = serde_json::from_value(json!({
        "apiVersion": "ironlb.io/v1alpha1",
        "kind": "L2Announcement",
        "metadata": {"name": "all"},
        "spec": {"ipPools": ["lan"], "interfaces": ["eth*"],
                 "nodeSelectors": [{"matchLabels": {"role": "edge"}}]}
    }))
    .unwrap();
    assert_eq!(ann.spec.ip_pools, ["lan"]);
    assert_eq!(ann.spec.node_selectors.len(), 1);
    let back: L2Announcement = serde_json::from_value(serde_json::to_value(&ann).unwrap()).unwrap();
    assert_eq!(back.spec, ann.spec);

    let crd = L2Announcement::crd();
    assert_eq!(crd.spec.scope, "Cluster");
    let schema = spec_schema_of(&crd);
    let interfaces = &schema["properties"]["spec"]["properties"]["interfaces"];
    assert!(interfaces["x-kubernetes-validations"].is_array());
}

#[test]
fn crds_yaml_is_two_documents_in_a_stable_order() {
    let yaml = crate::crds_yaml().unwrap();
    assert_eq!(yaml, crate::crds_yaml().unwrap());
    let first = yaml.find("name: ippools.ironlb.io").unwrap();
    let second = yaml.find("name: l2announcements.ironlb.io").unwrap();
    assert!(first < second);
    assert_eq!(yaml.lines().filter(|l| *l == "---").count(), 2);
    for doc in yaml.split("\n---\n").skip(1) {
        let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
            serde_yaml::from_str(doc).unwrap();
        assert_eq!(crd.spec.group, "ironlb.io");
    }
}

// === the CEL rules, evaluated client-side with the Kubernetes CEL libraries ===

fn openapi_schema<K: kube::CustomResourceExt>() -> Value {
    spec_schema_of(&K::crd())
}

fn cel_errors(schema: &Value, object: Value) -> Vec<String> {
    match kube_cel::Validator::new().validate(schema, &object, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.into_vec().into_iter().map(|e| e.message).collect(),
    }
}

fn pool_with(addresses: &[&str]) -> Value {
    json!({"apiVersion": "ironlb.io/v1alpha1", "kind": "IPPool", "metadata": {"name": "p"},
           "spec": {"addresses": addresses}})
}

#[test]
fn cel_rules_compile() {
    for schema in [
        openapi_schema::<IPPool>(),
        openapi_schema::<L2Announcement>(),
    ] {
        let compiled = kube_cel::compile_schema(&schema);
        fn walk(s: &kube_cel::CompiledSchema) -> usize {
            s.compilation_errors().len()
                + s.properties.values().map(walk).sum::<usize>()
                + s.items.as_deref().map(walk).unwrap_or(0)
        }
        assert_eq!(walk(&compiled), 0, "a rule does not compile");
    }
}

#[test]
fn cel_accepts_cidrs_ranges_and_single_ips_of_both_families() {
    let schema = openapi_schema::<IPPool>();
    let ok = pool_with(&[
        "192.0.2.0/24",
        "2001:db8::/64",
        "198.51.100.10-198.51.100.20",
        "203.0.113.7",
        "2001:db8:1::1 - 2001:db8:1::9",
    ]);
    assert_eq!(cel_errors(&schema, ok), Vec::<String>::new());
}

#[test]
fn cel_rejects_malformed_entries_and_an_empty_list() {
    let schema = openapi_schema::<IPPool>();
    for bad in [
        "192.0.2.0/33",
        "192.0.2.300",
        "192.0.2.1-2001:db8::1",
        "banana",
        "192.0.2.1-192.0.2.2-192.0.2.3",
    ] {
        let errors = cel_errors(&schema, pool_with(&[bad]));
        assert!(
            errors.iter().any(|m| m.contains("each address must be")),
            "{bad}: {errors:?}"
        );
    }
    let errors = cel_errors(&schema, pool_with(&[]));
    assert!(
        errors.iter().any(|m| m.contains("at least one")),
        "{errors:?}"
    );
}

#[test]
fn cel_rejects_interface_paths() {
    let schema = openapi_schema::<L2Announcement>();
    let ann = |i: &str| {
        json!({"apiVersion": "ironlb.io/v1alpha1", "kind": "L2Announcement",
                               "metadata": {"name": "a"}, "spec": {"interfaces": [i]}})
    };
    assert!(cel_errors(&schema, ann("eth*")).is_empty());
    assert!(!cel_errors(&schema, ann("../eth0")).is_empty());
}

/// kube-cel's estimate is a coarse heuristic, not the apiserver's cost model (which
/// only a real apiserver runs); the schema bounds (maxItems 256, maxLength 100) are
/// what keeps the real estimate small.
#[test]
fn cel_rules_pass_kube_cels_coarse_cost_heuristic() {
    let schema = openapi_schema::<IPPool>();
    let compiled = kube_cel::compile_schema(&schema);
    let addresses = &compiled.properties["spec"].properties["addresses"];
    for rule in ["size(self) > 0", ADDRESSES_CEL_RULE] {
        let warnings = kube_cel::estimate_rule_cost(rule, addresses);
        assert!(warnings.is_empty(), "{rule}: {warnings:?}");
    }
    let schema = openapi_schema::<L2Announcement>();
    let compiled = kube_cel::compile_schema(&schema);
    let interfaces = &compiled.properties["spec"].properties["interfaces"];
    let rule = schema["properties"]["spec"]["properties"]["interfaces"]["x-kubernetes-validations"]
        [0]["rule"]
        .as_str()
        .unwrap();
    assert!(kube_cel::estimate_rule_cost(rule, interfaces).is_empty());
}
