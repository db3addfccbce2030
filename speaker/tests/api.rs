//! The speaker against the embedded API server, without the network lab: what it says
//! about IPs it does not announce (condition, Events), and that its status writes keep
//! the controller's fields. No raw socket is opened (nothing is announced), so this runs
//! without root.

use std::collections::BTreeMap;
use std::time::Duration;

use ironlb_api::names::CONDITION_ANNOUNCED;
use ironlb_e2e::support::fixtures::{pool, Svc};
use ironlb_e2e::support::{spawn, wait_until, TestCluster};
use k8s_openapi::api::core::v1::{
    Namespace, Node, Pod, PodCondition, PodSpec, PodStatus, Secret, Service,
};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, Patch, PatchParams, PostParams};

const WAIT: Duration = Duration::from_secs(30);

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        ..Default::default()
    }
}

/// A cluster with one node, its Ready speaker Pod (podIP 127.0.0.1) and the key Secret.
async fn cluster() -> TestCluster {
    let c = TestCluster::start().await.expect("API server");
    let client = c.admin.clone();
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: meta("ironlb-system"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    Api::<Secret>::namespaced(client.clone(), "ironlb-system")
        .create(
            &PostParams::default(),
            &Secret {
                metadata: meta("ironlb-memberlist"),
                data: Some(BTreeMap::from([(
                    "key".to_string(),
                    ByteString(b"0123456789abcdef".to_vec()),
                )])),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    Api::<Node>::all(client.clone())
        .create(
            &PostParams::default(),
            &Node {
                metadata: meta("node1"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "ironlb-system");
    let mut pod_meta = meta("speaker-node1");
    pod_meta.labels = Some(BTreeMap::from([(
        "app.kubernetes.io/component".to_string(),
        "speaker".to_string(),
    )]));
    pods.create(
        &PostParams::default(),
        &Pod {
            metadata: pod_meta,
            spec: Some(PodSpec {
                node_name: Some("node1".into()),
                containers: vec![k8s_openapi::api::core::v1::Container {
                    name: "speaker".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut pod = pods.get_status("speaker-node1").await.unwrap();
    pod.status = Some(PodStatus {
        pod_ip: Some("127.0.0.1".into()),
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            ..Default::default()
        }]),
        ..Default::default()
    });
    pods.replace_status("speaker-node1", &PostParams::default(), &pod)
        .await
        .unwrap();
    c
}

fn start_speaker(c: &TestCluster) -> ironlb_e2e::support::ProcessGuard {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ironlb-speaker"));
    cmd.args([
        "--kubeconfig",
        c.admin_kubeconfig().to_str().unwrap(),
        "--node-name",
        "node1",
        "--health-listen",
        "127.0.0.1:0",
        "--heartbeat-port",
        &port.to_string(),
    ]);
    spawn(cmd).expect("speaker starts")
}

/// Creates `svc`, then writes its load-balancer IP as the controller would (its own
/// field manager).
async fn assign(c: &TestCluster, svc: Service, ip: Option<&str>) {
    let name = svc.metadata.name.clone().unwrap();
    let api: Api<Service> = Api::namespaced(c.admin.clone(), "default");
    api.create(&PostParams::default(), &svc).await.unwrap();
    if let Some(ip) = ip {
        let patch = serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
        });
        api.patch_status(
            &name,
            &PatchParams::apply("ironlb-controller").force(),
            &Patch::Apply(&patch),
        )
        .await
        .unwrap();
    }
}

/// Which object an Event is about.
#[derive(Clone, Copy)]
enum About<'a> {
    /// Any object of this name (in `default`).
    Name(&'a str),
    /// The object with this UID.
    Uid(&'a str),
}

async fn event_for(c: &TestCluster, about: About<'_>, reason: &str) -> Option<Event> {
    let events: Api<Event> = Api::namespaced(c.admin.clone(), "default");
    events
        .list(&Default::default())
        .await
        .ok()?
        .items
        .into_iter()
        .find(|e| {
            let regarding = e.regarding.as_ref();
            let (field, wanted) = match about {
                About::Name(name) => (regarding.and_then(|r| r.name.as_deref()), name),
                About::Uid(uid) => (regarding.and_then(|r| r.uid.as_deref()), uid),
            };
            e.reason.as_deref() == Some(reason) && field == Some(wanted)
        })
}

/// The speaker's condition on Service `name` (only if its UID is `uid`, when given).
async fn announced_condition(
    services: &Api<Service>,
    name: &str,
    uid: Option<&str>,
) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    let svc = services.get(name).await.ok()?;
    if uid.is_some_and(|u| svc.metadata.uid.as_deref() != Some(u)) {
        return None;
    }
    svc.status?
        .conditions?
        .into_iter()
        .find(|c| c.type_ == CONDITION_ANNOUNCED)
}

/// The IPPool `lan` (192.0.2.100-192.0.2.199).
async fn create_pool_lan(c: &TestCluster) {
    Api::<ironlb_api::IPPool>::all(c.admin.clone())
        .create(
            &PostParams::default(),
            &pool("lan", ["192.0.2.100-192.0.2.199"]),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_l2announcement_the_service_is_told_why_and_keeps_the_controllers_status() {
    let c = cluster().await;
    create_pool_lan(&c).await;
    let _speaker = start_speaker(&c);
    assign(&c, Svc::lb("web").build(), Some("192.0.2.100")).await;

    let services: Api<Service> = Api::namespaced(c.admin.clone(), "default");
    let condition = wait_until("the announced condition", WAIT, || {
        announced_condition(&services, "web", None)
    })
    .await
    .unwrap();
    assert_eq!(condition.status, "False");
    assert_eq!(condition.reason, "NoL2Announcement");
    assert_eq!(
        condition.message,
        "192.0.2.100 not announced: no L2Announcement selects IPPool lan"
    );
    // Server-side apply per field manager: the controller's ingress is still there.
    let svc = services.get("web").await.unwrap();
    let ingress = svc.status.unwrap().load_balancer.unwrap().ingress.unwrap();
    assert_eq!(ingress[0].ip.as_deref(), Some("192.0.2.100"));

    let event = wait_until("a NotAnnounced Event", WAIT, || {
        event_for(&c, About::Name("web"), "NotAnnounced")
    })
    .await
    .unwrap();
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert!(event
        .note
        .unwrap()
        .contains("no L2Announcement selects IPPool lan"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_ips_are_refused_with_a_warning_event_when_not_enabled() {
    let c = cluster().await;
    let _speaker = start_speaker(&c);
    let mut svc = Svc::of_type("ext", "ClusterIP")
        .external_ips(&["203.0.113.5"])
        .build();
    svc.metadata.namespace = Some("default".into());
    assign(&c, svc, None).await;
    let event = wait_until("an ExternalIPRefused Event", WAIT, || {
        event_for(&c, About::Name("ext"), "ExternalIPRefused")
    })
    .await
    .unwrap();
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    let note = event.note.unwrap();
    assert!(note.contains("203.0.113.5"), "{note}");
    assert!(note.contains("--externalips-enabled is off"), "{note}");
}

/// A Service deleted and created again under the same name is another object: it gets
/// its condition and its Warning Events afresh. (The speaker remembered what it had
/// written by name, for good: the second `web` never got its condition, the second
/// `ext` no Event.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_created_again_gets_its_condition_and_events_again() {
    let c = cluster().await;
    create_pool_lan(&c).await;
    let _speaker = start_speaker(&c);
    let services: Api<Service> = Api::namespaced(c.admin.clone(), "default");
    for round in 1..=2 {
        assign(&c, Svc::lb("web").build(), Some("192.0.2.100")).await;
        let mut ext = Svc::of_type("ext", "ClusterIP")
            .external_ips(&["203.0.113.5"])
            .build();
        ext.metadata.namespace = Some("default".into());
        assign(&c, ext, None).await;
        let web_uid = services.get("web").await.unwrap().metadata.uid.unwrap();
        let ext_uid = services.get("ext").await.unwrap().metadata.uid.unwrap();
        wait_until(&format!("web's condition, round {round}"), WAIT, || {
            announced_condition(&services, "web", Some(&web_uid))
        })
        .await
        .unwrap();
        wait_until(&format!("ext's Event, round {round}"), WAIT, || {
            event_for(&c, About::Uid(&ext_uid), "ExternalIPRefused")
        })
        .await
        .unwrap();
        for name in ["web", "ext"] {
            services.delete(name, &Default::default()).await.unwrap();
        }
        wait_until("both deleted", WAIT, || {
            let services = services.clone();
            async move {
                let left = services.list(&Default::default()).await.ok()?.items;
                left.iter()
                    .all(|s| !matches!(s.metadata.name.as_deref(), Some("web" | "ext")))
                    .then_some(())
            }
        })
        .await
        .unwrap();
    }
}
