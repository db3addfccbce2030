//! The HTTP surface: authentication, plain HTTP beside TLS, discovery, request records.

use ironlb_apiserver::{ApiServerConfig, RecordedRequest};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{client_for, code, within, Cluster};

/// A bare HTTP/1.1 request over plain TCP; returns (status code, body).
async fn raw(url: &str, method: &str, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    raw_with_body(url, method, path, token, "application/json", "").await
}

/// A bare HTTP/1.1 request with a body; the answer body is parsed as JSON when it is JSON
/// (a watch stream stays text, chunk sizes included).
async fn raw_with_body(
    url: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let addr = url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let code: u16 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (code, serde_json::from_str(body).unwrap_or(json!(body)))
}

#[tokio::test]
async fn wrong_or_missing_tokens_get_401_with_a_status() {
    within(async {
        let c = Cluster::start().await;
        let bad = client_for(&c.server, "not-a-token").await;
        let cms: Api<ConfigMap> = Api::namespaced(bad, "default");
        let err = cms.list(&ListParams::default()).await.unwrap_err();
        assert_eq!(code(&err), 401);

        let (status, body) = raw(&c.server.http_url(), "GET", "/api/v1/namespaces", None).await;
        assert_eq!(status, 401);
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["reason"], "Unauthorized");
        let (status, body) = raw(
            &c.server.http_url(),
            "GET",
            "/api/v1/namespaces",
            Some(c.server.admin_token()),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["kind"], "NamespaceList");
        let (status, _) = raw(&c.server.http_url(), "GET", "/healthz", None).await;
        assert_eq!(status, 200);
    })
    .await
}

#[tokio::test]
async fn configured_tokens_and_added_users_authenticate() {
    within(async {
        let c = Cluster::start_with(ApiServerConfig {
            tokens: vec![(
                "fixed-token".into(),
                "system:serviceaccount:ironlb:speaker".into(),
            )],
            ..ApiServerConfig::default()
        })
        .await;
        let (status, _) = raw(
            &c.server.http_url(),
            "GET",
            "/api/v1/nodes",
            Some("fixed-token"),
        )
        .await;
        assert_eq!(status, 200);
        let token = c.server.add_user("system:serviceaccount:ironlb:controller");
        let (status, _) = raw(&c.server.http_url(), "GET", "/api/v1/nodes", Some(&token)).await;
        assert_eq!(status, 200);
        let users: Vec<String> = c.server.requests().into_iter().map(|r| r.user).collect();
        assert_eq!(
            users,
            [
                "system:serviceaccount:ironlb:speaker",
                "system:serviceaccount:ironlb:controller"
            ]
        );
    })
    .await
}

#[tokio::test]
async fn discovery_and_version_documents() {
    within(async {
        let c = Cluster::start().await;
        let t = Some(c.server.admin_token());
        let url = c.server.http_url();
        let (_, api) = raw(&url, "GET", "/api", t).await;
        assert_eq!(api["versions"], json!(["v1"]));
        let (_, v1) = raw(&url, "GET", "/api/v1", t).await;
        let svc = v1["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "services")
            .unwrap();
        assert_eq!(svc["shortNames"], json!(["svc"]));
        assert_eq!(svc["namespaced"], true);
        assert!(v1["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "services/status"));
        let (_, apis) = raw(&url, "GET", "/apis", t).await;
        let groups: Vec<&str> = apis["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        for g in [
            "coordination.k8s.io",
            "discovery.k8s.io",
            "events.k8s.io",
            "networking.k8s.io",
            "apiextensions.k8s.io",
        ] {
            assert!(groups.contains(&g), "{g} missing from {groups:?}");
        }
        let (_, version) = raw(&url, "GET", "/version", t).await;
        assert_eq!(version["major"], "1");
        let (status, _) = raw(&url, "GET", "/apis/nope.example.com/v1", t).await;
        assert_eq!(status, 404);
        // A namespaced object has no address outside its namespace.
        let (status, _) = raw(&url, "GET", "/api/v1/services/kubernetes", t).await;
        assert_eq!(status, 404);
        let (status, body) = raw(&url, "GET", "/api/v1/services", t).await;
        assert_eq!((status, body["kind"].as_str()), (200, Some("ServiceList")));
    })
    .await
}

#[tokio::test]
async fn every_request_is_recorded_with_user_verb_and_resource() {
    within(async {
        let c = Cluster::start().await;
        let token = c.server.add_user("system:serviceaccount:ironlb:controller");
        let client = client_for(&c.server, &token).await;
        let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
        let svc: Service = serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}})).unwrap();
        svcs.create(&PostParams::default(), &svc).await.unwrap();
        svcs.get("web").await.unwrap();
        Api::<Service>::all(client.clone()).list(&ListParams::default()).await.unwrap();
        let status = json!({"apiVersion": "v1", "kind": "Service", "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}});
        svcs.patch_status("web", &PatchParams::apply("ironlb-controller"), &Patch::Apply(&status)).await.unwrap();
        svcs.delete("web", &Default::default()).await.unwrap();

        let rec = |verb: &str, ns: &str, name: &str, sub: &str| RecordedRequest {
            user: "system:serviceaccount:ironlb:controller".into(),
            verb: verb.into(),
            group: String::new(),
            version: "v1".into(),
            resource: "services".into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
        };
        assert_eq!(
            c.server.requests(),
            [
                rec("create", "default", "", ""),
                rec("get", "default", "web", ""),
                rec("list", "", "", ""),
                rec("patch", "default", "web", "status"),
                rec("delete", "default", "web", ""),
            ]
        );
    })
    .await
}

#[tokio::test]
async fn an_extra_listener_serves_the_same_cluster_with_a_verifiable_certificate() {
    within(async {
        let c = Cluster::start().await;
        // 127.0.0.2 is loopback too, but not an address in the certificate: the kubeconfig
        // must name the in-cluster server name for verification to pass.
        let listener = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        c.server.serve_listener(listener);
        let url = format!("https://127.0.0.2:{port}");
        let yaml = c.server.kubeconfig_yaml(c.server.admin_token(), &url);
        assert!(yaml.contains("tls-server-name: kubernetes.default.svc"));
        let kc = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        let cms: Api<ConfigMap> = Api::namespaced(client, "default");
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "via-extra"}})).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
        let main: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
        assert!(main.get_opt("via-extra").await.unwrap().is_some());
    })
    .await
}

#[tokio::test]
async fn yaml_apply_bodies_and_legacy_watch_paths() {
    within(async {
        let c = Cluster::start().await;
        let url = c.server.http_url();
        let t = Some(c.server.admin_token());
        let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  greeting: hello\n";
        let path = "/api/v1/namespaces/default/configmaps/from-yaml?fieldManager=raw";
        let (status, body) = raw_with_body(&url, "PATCH", path, t, "application/apply-patch+yaml", yaml).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["data"]["greeting"], "hello");
        assert_eq!(body["metadata"]["managedFields"][0]["manager"], "raw");
        let (status, _) = raw_with_body(&url, "PATCH", "/api/v1/namespaces/default/configmaps/x", t, "text/plain", "{}").await;
        assert_eq!(status, 415);
        let (status, body) = raw_with_body(&url, "PATCH", "/api/v1/namespaces/default/configmaps/from-yaml", t, "application/apply-patch+yaml", yaml).await;
        assert_eq!(status, 400, "apply needs a field manager: {body}");

        // The legacy /watch/ path streams the current state, then ends at the timeout.
        let (status, stream) = raw(&url, "GET", "/api/v1/watch/namespaces/default/configmaps?timeoutSeconds=1", t).await;
        assert_eq!(status, 200);
        let text = stream.as_str().unwrap_or_default().to_string();
        assert!(text.contains("\"type\":\"ADDED\"") && text.contains("from-yaml"), "{text}");
    })
    .await
}

#[tokio::test]
async fn kube_discovery_works_both_legacy_and_aggregated() {
    within(async {
        let c = Cluster::start().await;
        for aggregated in [false, true] {
            let d = kube::Discovery::new(c.client.clone());
            let d = if aggregated {
                d.run_aggregated().await.unwrap()
            } else {
                d.run().await.unwrap()
            };
            let core = d.get("").expect("core group");
            let (svc, caps) = core
                .recommended_resources()
                .into_iter()
                .find(|(r, _)| r.plural == "services")
                .expect("services");
            assert_eq!(svc.kind, "Service");
            assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
            assert!(
                caps.subresources
                    .iter()
                    .any(|(s, _)| s.plural == "services/status" || s.plural == "status"),
                "{:?}",
                caps.subresources
            );
            assert!(d.has_group("coordination.k8s.io"));
            assert!(d.has_group("apiextensions.k8s.io"));
        }
    })
    .await
}
