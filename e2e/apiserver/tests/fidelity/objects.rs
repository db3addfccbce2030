//! Object bookkeeping and the write verbs through kube-rs.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::{code, within, Cluster};

fn config_map(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
        ..Default::default()
    }
}

#[tokio::test]
async fn create_fills_metadata_and_a_second_create_is_409() {
    within(async {
        let c = Cluster::start().await;
        let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
        let created = cms
            .create(&PostParams::default(), &config_map("app", &[]))
            .await
            .unwrap();
        let md = &created.metadata;
        assert_eq!(md.namespace.as_deref(), Some("default"));
        assert!(md.uid.as_ref().is_some_and(|u| u.len() == 36));
        assert!(md.creation_timestamp.is_some());
        let rv: u64 = md.resource_version.as_ref().unwrap().parse().unwrap();
        assert!(rv > 1);
        let again = cms
            .create(&PostParams::default(), &config_map("app", &[]))
            .await
            .unwrap_err();
        assert_eq!(code(&again), 409);
        let kube::Error::Api(status) = again else {
            unreachable!()
        };
        assert_eq!(status.reason, "AlreadyExists");
        assert_eq!(status.message, "configmaps \"app\" already exists");
    })
    .await
}

#[tokio::test]
async fn generate_name_and_missing_namespaces_behave_like_a_real_server() {
    within(async {
        let c = Cluster::start().await;
        let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
        let mut cm = config_map("", &[]);
        cm.metadata.name = None;
        cm.metadata.generate_name = Some("cache-".into());
        let created = cms.create(&PostParams::default(), &cm).await.unwrap();
        let name = created.metadata.name.unwrap();
        assert!(
            name.starts_with("cache-") && name.len() == "cache-".len() + 5,
            "{name}"
        );

        let nowhere: Api<ConfigMap> = Api::namespaced(c.client.clone(), "nowhere");
        let err = nowhere
            .create(&PostParams::default(), &config_map("x", &[]))
            .await
            .unwrap_err();
        assert_eq!(code(&err), 404);
        let kube::Error::Api(status) = err else {
            unreachable!()
        };
        assert_eq!(status.message, "namespaces \"nowhere\" not found");

        let bad = cms
            .create(&PostParams::default(), &config_map("Not_Valid", &[]))
            .await
            .unwrap_err();
        assert_eq!(code(&bad), 422);
    })
    .await
}

#[tokio::test]
async fn replace_with_a_stale_resource_version_is_409_and_without_one_is_unconditional() {
    within(async {
        let c = Cluster::start().await;
        let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
        let first = cms
            .create(&PostParams::default(), &config_map("app", &[]))
            .await
            .unwrap();
        let mut second = first.clone();
        second.data = Some(BTreeMap::from([("k".into(), "second".into())]));
        let second = cms
            .replace("app", &PostParams::default(), &second)
            .await
            .unwrap();
        assert_ne!(
            second.metadata.resource_version,
            first.metadata.resource_version
        );

        let mut stale = first.clone();
        stale.data = Some(BTreeMap::from([("k".into(), "stale".into())]));
        let err = cms
            .replace("app", &PostParams::default(), &stale)
            .await
            .unwrap_err();
        assert_eq!(code(&err), 409);
        let kube::Error::Api(status) = err else {
            unreachable!()
        };
        assert_eq!(status.reason, "Conflict");

        stale.metadata.resource_version = None;
        let forced = cms
            .replace("app", &PostParams::default(), &stale)
            .await
            .unwrap();
        assert_eq!(forced.data.unwrap()["k"], "stale");
        assert_eq!(
            forced.metadata.uid, first.metadata.uid,
            "identity survives a replace"
        );
    })
    .await
}

#[tokio::test]
async fn a_no_op_write_keeps_the_resource_version() {
    within(async {
        let c = Cluster::start().await;
        let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
        let first = cms
            .create(&PostParams::default(), &config_map("app", &[]))
            .await
            .unwrap();
        let same = cms
            .replace("app", &PostParams::default(), &first)
            .await
            .unwrap();
        assert_eq!(
            same.metadata.resource_version,
            first.metadata.resource_version
        );
    })
    .await
}

#[tokio::test]
async fn finalizers_hold_a_deleted_object_until_the_last_one_goes() {
    within(async {
        let c = Cluster::start().await;
        let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
        let mut cm = config_map("held", &[]);
        cm.metadata.finalizers = Some(vec!["ironlb.io/a".into(), "ironlb.io/b".into()]);
        cms.create(&PostParams::default(), &cm).await.unwrap();

        let answer = cms
            .delete("held", &DeleteParams::background())
            .await
            .unwrap();
        let marked = answer
            .left()
            .expect("a marked object comes back, not a Status");
        assert!(marked.metadata.deletion_timestamp.is_some());
        let still = cms.get("held").await.unwrap();
        assert!(still.metadata.deletion_timestamp.is_some());

        let drop_a = json!({"metadata": {"finalizers": ["ironlb.io/b"]}});
        cms.patch("held", &PatchParams::default(), &Patch::Merge(&drop_a))
            .await
            .unwrap();
        assert!(cms.get_opt("held").await.unwrap().is_some());
        let add = json!({"metadata": {"finalizers": ["ironlb.io/b", "ironlb.io/new"]}});
        let err = cms
            .patch("held", &PatchParams::default(), &Patch::Merge(&add))
            .await
            .unwrap_err();
        assert_eq!(code(&err), 422, "no new finalizers on a deleting object");

        let drop_all = json!({"metadata": {"finalizers": null}});
        cms.patch("held", &PatchParams::default(), &Patch::Merge(&drop_all))
            .await
            .unwrap();
        assert!(cms.get_opt("held").await.unwrap().is_none());
        assert_eq!(
            code(
                &cms.delete("held", &DeleteParams::default())
                    .await
                    .unwrap_err()
            ),
            404
        );
    })
    .await
}

#[tokio::test]
async fn merge_strategic_and_json_patches() {
    within(async {
        let c = Cluster::start().await;
        let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
            "spec": {"containers": [
                {"name": "app", "image": "echo:1", "ports": [{"containerPort": 80}]},
                {"name": "sidecar", "image": "proxy:1"}
            ]}
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();

        // Strategic merge: containers merge by name, the other container stays.
        let smp = json!({"spec": {"containers": [{"name": "app", "image": "echo:2"}]}});
        let p = pods
            .patch("web", &PatchParams::default(), &Patch::Strategic(&smp))
            .await
            .unwrap();
        let containers = p.spec.unwrap().containers;
        assert_eq!(containers.len(), 2);
        assert_eq!(containers[0].image.as_deref(), Some("echo:2"));
        assert_eq!(containers[0].ports.as_ref().unwrap()[0].container_port, 80);

        // JSON merge patch: a list is replaced whole, null removes a key.
        let merge = json!({"metadata": {"labels": {"tier": null, "v": "2"}}});
        let p = pods
            .patch("web", &PatchParams::default(), &Patch::Merge(&merge))
            .await
            .unwrap();
        let labels = p.metadata.labels.unwrap();
        assert_eq!(labels.get("v").map(String::as_str), Some("2"));
        assert!(!labels.contains_key("tier"));

        // JSON patch.
        let ops: json_patch_ops::Ops = serde_json::from_value(json!([
            {"op": "replace", "path": "/spec/containers/1/image", "value": "proxy:2"},
            {"op": "add", "path": "/metadata/annotations", "value": {"note": "patched"}}
        ]))
        .unwrap();
        let p = pods
            .patch("web", &PatchParams::default(), &Patch::<()>::Json(ops))
            .await
            .unwrap();
        assert_eq!(
            p.spec.unwrap().containers[1].image.as_deref(),
            Some("proxy:2")
        );
        assert_eq!(p.metadata.annotations.unwrap()["note"], "patched");

        // A JSON patch whose test fails is rejected and changes nothing.
        let failing: json_patch_ops::Ops = serde_json::from_value(
            json!([{"op": "test", "path": "/metadata/name", "value": "other"}]),
        )
        .unwrap();
        assert_eq!(
            code(
                &pods
                    .patch("web", &PatchParams::default(), &Patch::<()>::Json(failing))
                    .await
                    .unwrap_err()
            ),
            422
        );
    })
    .await
}

/// kube's `Patch::Json` takes json-patch's operation list.
mod json_patch_ops {
    pub type Ops = json_patch::Patch;
}

#[tokio::test]
async fn generation_moves_only_with_the_spec() {
    within(async {
        let c = Cluster::start().await;
        let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "g"}, "spec": {"containers": [{"name": "a", "image": "x"}]}})).unwrap();
        let p = pods.create(&PostParams::default(), &pod).await.unwrap();
        assert_eq!(p.metadata.generation, Some(1));
        let label = json!({"metadata": {"labels": {"a": "b"}}});
        let p = pods.patch("g", &PatchParams::default(), &Patch::Merge(&label)).await.unwrap();
        assert_eq!(p.metadata.generation, Some(1), "metadata changes keep the generation");
        let status = json!({"status": {"phase": "Running"}});
        let p = pods.patch_status("g", &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
        assert_eq!(p.metadata.generation, Some(1), "status changes keep the generation");
        assert_eq!(p.status.unwrap().phase.as_deref(), Some("Running"));
        let spec = json!({"spec": {"activeDeadlineSeconds": 30}});
        let p = pods.patch("g", &PatchParams::default(), &Patch::Merge(&spec)).await.unwrap();
        assert_eq!(p.metadata.generation, Some(2));
    })
    .await
}

#[tokio::test]
async fn label_and_field_selectors_and_paging() {
    within(async {
        let c = Cluster::start().await;
        let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(c.client.clone());
        ns.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "other"}})).unwrap(),
        )
        .await
        .unwrap();
        let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
        for i in 0..7 {
            let tier = if i % 2 == 0 { "front" } else { "back" };
            cms.create(
                &PostParams::default(),
                &config_map(&format!("cm-{i}"), &[("app", "web"), ("tier", tier)]),
            )
            .await
            .unwrap();
        }
        let other: Api<ConfigMap> = Api::namespaced(c.client.clone(), "other");
        other
            .create(
                &PostParams::default(),
                &config_map("cm-0", &[("app", "web")]),
            )
            .await
            .unwrap();

        let names = |l: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
            l.items
                .into_iter()
                .map(|c| c.metadata.name.unwrap())
                .collect()
        };
        let front = cms
            .list(&ListParams::default().labels("tier=front"))
            .await
            .unwrap();
        assert_eq!(names(front), ["cm-0", "cm-2", "cm-4", "cm-6"]);
        let not_back = cms
            .list(&ListParams::default().labels("app==web,tier!=back"))
            .await
            .unwrap();
        assert_eq!(not_back.items.len(), 4);
        let set = cms
            .list(&ListParams::default().labels("tier in (back),!missing"))
            .await
            .unwrap();
        assert_eq!(names(set), ["cm-1", "cm-3", "cm-5"]);
        let none = cms
            .list(&ListParams::default().labels("tier notin (front,back)"))
            .await
            .unwrap();
        assert!(none.items.is_empty());
        let by_name = cms
            .list(&ListParams::default().fields("metadata.name=cm-3"))
            .await
            .unwrap();
        assert_eq!(names(by_name), ["cm-3"]);

        let all: Api<ConfigMap> = Api::all(c.client.clone());
        let in_other = all
            .list(&ListParams::default().fields("metadata.namespace=other"))
            .await
            .unwrap();
        assert_eq!(in_other.items.len(), 1);
        assert_eq!(
            all.list(&ListParams::default().labels("app=web"))
                .await
                .unwrap()
                .items
                .len(),
            8
        );

        // Paging: 3 + 3 + 1, every item exactly once, same order as a full list.
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut lp = ListParams::default().limit(3);
            if let Some(t) = &token {
                lp = lp.continue_token(t);
            }
            let page = cms.list(&lp).await.unwrap();
            pages += 1;
            token = page.metadata.continue_.clone().filter(|t| !t.is_empty());
            seen.extend(names(page));
            if token.is_none() {
                break;
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(seen, (0..7).map(|i| format!("cm-{i}")).collect::<Vec<_>>());
        let full = cms.list(&ListParams::default()).await.unwrap();
        assert!(
            full.metadata
                .resource_version
                .unwrap()
                .parse::<u64>()
                .unwrap()
                > 8
        );
    })
    .await
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_objects() {
    within(async {
        let c = Cluster::start().await;
        let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(c.client.clone());
        let created = ns
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "tmp"}})).unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
        assert_eq!(
            created.metadata.labels.unwrap()["kubernetes.io/metadata.name"],
            "tmp"
        );
        let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "tmp");
        cms.create(&PostParams::default(), &config_map("a", &[]))
            .await
            .unwrap();
        ns.delete("tmp", &DeleteParams::default()).await.unwrap();
        assert!(cms.get_opt("a").await.unwrap().is_none());
        assert!(ns.get_opt("tmp").await.unwrap().is_none());
        for builtin in ["default", "kube-system", "kube-public"] {
            assert!(ns.get_opt(builtin).await.unwrap().is_some());
        }
        let cms_default: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
        cms_default
            .create(&PostParams::default(), &config_map("x", &[("del", "yes")]))
            .await
            .unwrap();
        cms_default
            .create(&PostParams::default(), &config_map("y", &[]))
            .await
            .unwrap();
        cms_default
            .delete_collection(
                &DeleteParams::default(),
                &ListParams::default().labels("del=yes"),
            )
            .await
            .unwrap();
        let left: Vec<String> = cms_default
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|c| c.metadata.name.unwrap())
            .collect();
        assert_eq!(left, ["y"]);
    })
    .await
}

#[tokio::test]
async fn deleting_an_owner_collects_dependents_without_other_live_owners() {
    within(async {
        let c = Cluster::start().await;
        let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
        let owner_ref = |cm: &ConfigMap| {
            json!({"apiVersion": "v1", "kind": "ConfigMap", "name": cm.metadata.name, "uid": cm.metadata.uid})
        };
        let a = cms.create(&PostParams::default(), &config_map("owner-a", &[])).await.unwrap();
        let b = cms.create(&PostParams::default(), &config_map("owner-b", &[])).await.unwrap();
        let dependent = |name: &str, owners: Vec<serde_json::Value>| -> ConfigMap {
            serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": owners}})).unwrap()
        };
        cms.create(&PostParams::default(), &dependent("only-a", vec![owner_ref(&a)])).await.unwrap();
        cms.create(&PostParams::default(), &dependent("a-and-b", vec![owner_ref(&a), owner_ref(&b)])).await.unwrap();
        cms.delete("owner-a", &DeleteParams::background()).await.unwrap();
        assert!(cms.get_opt("only-a").await.unwrap().is_none(), "sole owner gone: collected");
        assert!(cms.get_opt("a-and-b").await.unwrap().is_some(), "owner-b still lives");
        cms.delete("owner-b", &DeleteParams::orphan()).await.unwrap();
        assert!(cms.get_opt("a-and-b").await.unwrap().is_some(), "orphaned on request");
    })
    .await
}

#[tokio::test]
async fn secrets_fold_string_data_into_data_and_tls_secrets_need_both_keys() {
    within(async {
        let c = Cluster::start().await;
        let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(c.client.clone(), "default");
        let s: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
            "metadata": {"name": "cert"}, "type": "kubernetes.io/tls",
            "stringData": {"tls.crt": "CERT", "tls.key": "KEY"}
        }))
        .unwrap();
        let stored = secrets.create(&PostParams::default(), &s).await.unwrap();
        assert!(stored.string_data.is_none());
        let data = stored.data.unwrap();
        assert_eq!(data["tls.crt"].0, b"CERT");
        assert_eq!(data["tls.key"].0, b"KEY");
        let half: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
            "metadata": {"name": "half"}, "type": "kubernetes.io/tls", "stringData": {"tls.crt": "CERT"}
        }))
        .unwrap();
        assert_eq!(code(&secrets.create(&PostParams::default(), &half).await.unwrap_err()), 422);
        let opaque: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({"metadata": {"name": "plain"}})).unwrap();
        assert_eq!(secrets.create(&PostParams::default(), &opaque).await.unwrap().type_.as_deref(), Some("Opaque"));
    })
    .await
}
