//! CustomResourceDefinitions: creating one serves its kind; deleting it stops.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::core::GroupVersionKind;
use serde_json::json;

use crate::support::{code, within, Cluster};

pub fn pool_crd() -> serde_json::Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "ippools.ironlb.io"},
        "spec": {
            "group": "ironlb.io",
            "names": {"kind": "IPPool", "plural": "ippools", "singular": "ippool", "shortNames": ["ipp"], "listKind": "IPPoolList"},
            "scope": "Cluster",
            "versions": [{
                "name": "v1alpha1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [{"name": "Addresses", "type": "string", "jsonPath": ".spec.addresses"}],
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "required": ["addresses"], "properties": {
                        "addresses": {"type": "array", "items": {"type": "string"}},
                        "autoAssign": {"type": "boolean", "default": true}
                    }},
                    "status": {"type": "object", "properties": {
                        "assigned": {"type": "integer"},
                        "conditions": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
                            "items": {"type": "object", "properties": {"type": {"type": "string"}, "status": {"type": "string"}}}}
                    }}
                }}}
            }]
        }
    })
}

#[tokio::test]
async fn a_crd_is_served_once_created_with_defaults_pruning_and_status() {
    within(async {
        let c = Cluster::start().await;
        let crds: Api<CustomResourceDefinition> = Api::all(c.client.clone());
        let crd: CustomResourceDefinition = serde_json::from_value(pool_crd()).unwrap();
        let created = crds.create(&PostParams::default(), &crd).await.unwrap();
        let conditions = created.status.unwrap().conditions.unwrap();
        assert!(conditions.iter().any(|c| c.type_ == "Established" && c.status == "True"));

        let gvk = GroupVersionKind::gvk("ironlb.io", "v1alpha1", "IPPool");
        let ar = ApiResource::from_gvk_with_plural(&gvk, "ippools");
        let pools: Api<DynamicObject> = Api::all_with(c.client.clone(), &ar);
        let pool: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "ironlb.io/v1alpha1", "kind": "IPPool",
            "metadata": {"name": "lan"},
            "spec": {"addresses": ["192.0.2.0/24"], "unknownField": 1},
            "status": {"assigned": 5}
        }))
        .unwrap();
        let stored = pools.create(&PostParams::default(), &pool).await.unwrap();
        assert_eq!(stored.data["spec"], json!({"addresses": ["192.0.2.0/24"], "autoAssign": true}));
        assert!(stored.data.get("status").is_none(), "status is not set through create");
        assert_eq!(stored.metadata.generation, Some(1));

        let status = json!({"apiVersion": "ironlb.io/v1alpha1", "kind": "IPPool", "status": {"assigned": 1, "conditions": [{"type": "Ready", "status": "True"}]}});
        let after = pools.patch_status("lan", &PatchParams::apply("ironlb-controller").force(), &Patch::Apply(&status)).await.unwrap();
        assert_eq!(after.data["status"]["assigned"], 1);
        assert_eq!(after.metadata.generation, Some(1));

        let bad: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "ironlb.io/v1alpha1", "kind": "IPPool", "metadata": {"name": "bad"}, "spec": {"addresses": "not-a-list"}
        }))
        .unwrap();
        assert_eq!(code(&pools.create(&PostParams::default(), &bad).await.unwrap_err()), 422);
        // What kubectl sends by default: unknown fields are an error, not silently pruned.
        let typo: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "ironlb.io/v1alpha1", "kind": "IPPool", "metadata": {"name": "typo"}, "spec": {"addresses": [], "autoAsign": false}
        }))
        .unwrap();
        let strict = PatchParams::apply("me").validation(kube::api::ValidationDirective::Strict);
        let err = pools.patch("typo", &strict, &Patch::Apply(&typo)).await.unwrap_err();
        assert_eq!(code(&err), 400);
        assert!(err.to_string().contains("unknown field \"spec.autoAsign\""), "{err}");
        assert_eq!(pools.list(&ListParams::default()).await.unwrap().items.len(), 1);

        // Discovery lists the new kind with its short name and status subresource.
        let req = http::Request::get("/apis/ironlb.io/v1alpha1").body(Vec::new()).unwrap();
        let doc: serde_json::Value = c.client.request(req).await.unwrap();
        let names: Vec<&str> = doc["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["ippools", "ippools/status"]);
        assert_eq!(doc["resources"][0]["shortNames"], json!(["ipp"]));

        crds.delete("ippools.ironlb.io", &DeleteParams::default()).await.unwrap();
        assert_eq!(code(&pools.list(&ListParams::default()).await.unwrap_err()), 404);
    })
    .await
}

#[tokio::test]
async fn strategic_merge_on_a_custom_resource_is_415() {
    within(async {
        let c = Cluster::start().await;
        let crds: Api<CustomResourceDefinition> = Api::all(c.client.clone());
        crds.create(&PostParams::default(), &serde_json::from_value(pool_crd()).unwrap()).await.unwrap();
        let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("ironlb.io", "v1alpha1", "IPPool"), "ippools");
        let pools: Api<DynamicObject> = Api::all_with(c.client.clone(), &ar);
        let pool: DynamicObject = serde_json::from_value(json!({"apiVersion": "ironlb.io/v1alpha1", "kind": "IPPool", "metadata": {"name": "p"}, "spec": {"addresses": []}})).unwrap();
        pools.create(&PostParams::default(), &pool).await.unwrap();
        let p = json!({"spec": {"autoAssign": false}});
        assert_eq!(code(&pools.patch("p", &PatchParams::default(), &Patch::Strategic(&p)).await.unwrap_err()), 415);
        let merged = pools.patch("p", &PatchParams::default(), &Patch::Merge(&p)).await.unwrap();
        assert_eq!(merged.data["spec"]["autoAssign"], false);
        assert_eq!(merged.metadata.generation, Some(2));
    })
    .await
}

/// The chart's CRDs, as `helm install` applies them: their CEL rules
/// (`x-kubernetes-validations`) refuse what they describe, with a 422 naming the field.
#[tokio::test]
async fn the_charts_cel_rules_are_enforced() {
    within(async {
        let c = Cluster::start().await;
        let crds: Api<CustomResourceDefinition> = Api::all(c.client.clone());
        let file = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../charts/ironlb/crds/ironlb-crds.yaml"
        );
        let text = std::fs::read_to_string(file).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let crd: CustomResourceDefinition = serde::Deserialize::deserialize(doc).unwrap();
            crds.create(&PostParams::default(), &crd).await.unwrap();
        }
        let gvk = GroupVersionKind::gvk("ironlb.io", "v1alpha1", "IPPool");
        let pools: Api<DynamicObject> = Api::all_with(
            c.client.clone(),
            &ApiResource::from_gvk_with_plural(&gvk, "ippools"),
        );
        let pool = |name: &str, addresses: serde_json::Value| -> DynamicObject {
            serde_json::from_value(json!({"apiVersion": "ironlb.io/v1alpha1", "kind": "IPPool",
                "metadata": {"name": name}, "spec": {"addresses": addresses}}))
            .unwrap()
        };
        let pp = PostParams::default();
        pools
            .create(
                &pp,
                &pool("good", json!(["192.0.2.0/24", "2001:db8::1-2001:db8::ff"])),
            )
            .await
            .unwrap();
        for (name, addresses) in [
            ("empty", json!([])),
            ("garbage", json!(["192.0.2.0/24", "not-an-ip"])),
        ] {
            let err = pools.create(&pp, &pool(name, addresses)).await.unwrap_err();
            assert_eq!(code(&err), 422, "{name}: {err}");
            assert!(err.to_string().contains("spec.addresses"), "{name}: {err}");
        }
        assert_eq!(
            pools
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .len(),
            1
        );
    })
    .await
}
