//! Watches: kube-rs watcher and reflector, resume, 410 Gone, bookmarks, streaming lists,
//! selector transitions.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use ironlb_apiserver::ApiServerConfig;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::PartialObjectMeta;
use kube::runtime::{reflector, watcher, WatchStreamExt};
use serde_json::json;

use crate::support::{eventually, within, Cluster};

fn cm(name: &str, value: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("v".to_string(), value.to_string())])),
        ..Default::default()
    }
}

async fn reflector_follows(cfg: watcher::Config) {
    let c = Cluster::start().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    for i in 0..5 {
        cms.create(&PostParams::default(), &cm(&format!("pre-{i}"), "0"))
            .await
            .unwrap();
    }
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(cms.clone(), cfg)).applied_objects();
    let task = tokio::spawn(stream.for_each(|_| async {}));
    reader.wait_until_ready().await.unwrap();
    assert_eq!(reader.state().len(), 5);

    cms.create(&PostParams::default(), &cm("live", "0"))
        .await
        .unwrap();
    let bump = json!({"data": {"v": "1"}});
    cms.patch("pre-0", &PatchParams::default(), &Patch::Merge(&bump))
        .await
        .unwrap();
    cms.delete("pre-1", &DeleteParams::default()).await.unwrap();
    eventually(|| {
        let reader = reader.clone();
        async move {
            let state = reader.state();
            let names: Vec<String> = state
                .iter()
                .map(|c| c.metadata.name.clone().unwrap())
                .collect();
            let pre0 = state
                .iter()
                .find(|c| c.metadata.name.as_deref() == Some("pre-0"))?;
            let done = names.len() == 5
                && names.contains(&"live".to_string())
                && !names.contains(&"pre-1".to_string())
                && pre0.data.as_ref()?["v"] == "1";
            done.then_some(())
        }
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn reflector_fills_and_follows_creates_updates_and_deletes() {
    within(reflector_follows(watcher::Config::default())).await
}

#[tokio::test]
async fn reflector_works_with_streaming_lists_and_small_pages() {
    within(reflector_follows(
        watcher::Config::default().streaming_lists(),
    ))
    .await;
    within(reflector_follows(watcher::Config::default().page_size(2))).await;
}

#[tokio::test]
async fn a_watch_resumes_from_a_resource_version_and_a_too_old_one_is_gone() {
    within(async {
        let c = Cluster::start_with(ApiServerConfig {
            history_limit: 4,
            ..ApiServerConfig::default()
        })
        .await;
        let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
        let first = cms
            .create(&PostParams::default(), &cm("a", "0"))
            .await
            .unwrap();
        let rv_after_a = first.metadata.resource_version.clone().unwrap();
        cms.create(&PostParams::default(), &cm("b", "0"))
            .await
            .unwrap();
        cms.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(&json!({"data": {"v": "1"}})),
        )
        .await
        .unwrap();

        // Resume after "a" was created: b ADDED, then a MODIFIED, nothing older.
        let mut stream = cms
            .watch(&WatchParams::default(), &rv_after_a)
            .await
            .unwrap()
            .boxed();
        match stream.try_next().await.unwrap().unwrap() {
            WatchEvent::Added(o) => assert_eq!(o.metadata.name.as_deref(), Some("b")),
            other => panic!("expected ADDED b, got {other:?}"),
        }
        match stream.try_next().await.unwrap().unwrap() {
            WatchEvent::Modified(o) => assert_eq!(o.data.unwrap()["v"], "1"),
            other => panic!("expected MODIFIED a, got {other:?}"),
        }
        drop(stream);

        // Push the history past its limit; the old version is gone now.
        for i in 0..6 {
            cms.create(&PostParams::default(), &cm(&format!("c{i}"), "0"))
                .await
                .unwrap();
        }
        let mut stream = cms
            .watch(&WatchParams::default(), &rv_after_a)
            .await
            .unwrap()
            .boxed();
        match stream.try_next().await.unwrap().unwrap() {
            WatchEvent::Error(status) => {
                assert_eq!(status.code, 410);
                assert_eq!(status.reason, "Expired");
            }
            other => panic!("expected a 410 ERROR event, got {other:?}"),
        }
    })
    .await
}

#[tokio::test]
async fn watches_with_bookmarks_get_bookmarks_and_selectors_see_transitions() {
    within(async {
        let c = Cluster::start().await;
        let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
        let start_rv = cms
            .create(&PostParams::default(), &cm("x", "0"))
            .await
            .unwrap()
            .metadata
            .resource_version
            .unwrap();
        let wp = WatchParams::default().labels("app=web");
        let mut stream = cms.watch(&wp, &start_rv).await.unwrap().boxed();
        // Relabel x out of the selector, then back in: DELETED then ADDED for this watcher.
        cms.patch(
            "x",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"app": "db"}}})),
        )
        .await
        .unwrap();
        let last = cms
            .patch(
                "x",
                &PatchParams::default(),
                &Patch::Merge(&json!({"metadata": {"labels": {"app": "web"}}})),
            )
            .await
            .unwrap();
        let last_rv: u64 = last.metadata.resource_version.unwrap().parse().unwrap();
        // Read until a bookmark vouches for everything up to the last change.
        let mut kinds = Vec::new();
        let mut bookmarks = 0;
        loop {
            match stream.try_next().await.unwrap().unwrap() {
                WatchEvent::Added(_) => kinds.push("ADDED"),
                WatchEvent::Modified(_) => kinds.push("MODIFIED"),
                WatchEvent::Deleted(_) => kinds.push("DELETED"),
                WatchEvent::Bookmark(b) => {
                    bookmarks += 1;
                    let rv: u64 = b.metadata.resource_version.parse().unwrap();
                    if rv >= last_rv {
                        break;
                    }
                }
                WatchEvent::Error(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(kinds, ["DELETED", "ADDED"]);
        assert!(bookmarks >= 1);
    })
    .await
}

#[tokio::test]
async fn a_watch_with_rv_zero_starts_with_the_current_state_and_times_out() {
    within(async {
        let c = Cluster::start().await;
        let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
        cms.create(&PostParams::default(), &cm("one", "0"))
            .await
            .unwrap();
        let wp = WatchParams::default().timeout(1).disable_bookmarks();
        let events: Vec<_> = cms
            .watch(&wp, "0")
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(
            events.len(),
            1,
            "one ADDED, then the stream ends at the timeout"
        );
        assert!(
            matches!(&events[0], WatchEvent::Added(o) if o.metadata.name.as_deref() == Some("one"))
        );
    })
    .await
}

#[tokio::test]
async fn metadata_watches_and_lists_get_partial_object_metadata() {
    within(async {
        let c = Cluster::start().await;
        let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
        cms.create(&PostParams::default(), &cm("m", "0"))
            .await
            .unwrap();
        let list = cms.list_metadata(&Default::default()).await.unwrap();
        assert_eq!(list.items.len(), 1);
        assert_eq!(
            list.items[0].types.as_ref().unwrap().kind,
            "PartialObjectMetadata"
        );
        let got = cms.get_metadata("m").await.unwrap();
        assert_eq!(got.metadata.labels.unwrap()["app"], "web");
        let metas: Api<PartialObjectMeta<ConfigMap>> = Api::namespaced(c.client.clone(), "default");
        let (reader, writer) = reflector::store();
        let task = tokio::spawn(
            reflector::reflector(writer, watcher(metas, watcher::Config::default()))
                .for_each(|_| async {}),
        );
        reader.wait_until_ready().await.unwrap();
        cms.create(&PostParams::default(), &cm("n", "0"))
            .await
            .unwrap();
        eventually(|| {
            let reader = reader.clone();
            async move { (reader.state().len() == 2).then_some(()) }
        })
        .await;
        task.abort();
    })
    .await
}
