//! The installed kubectl against the server, without `--validate=false`.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use serde_json::{json, Value};

use crate::support::{eventually, within, Cluster};

const KUBECTL: &str = "kubectl";

/// Run kubectl with the given kubeconfig; returns (success, stdout, stderr).
async fn kubectl(kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache_dir(kubeconfig))
        .args(args)
        .env_remove("KUBECONFIG")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("running {KUBECTL} (install kubectl v1.32+ on PATH): {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A discovery cache per test server, so that no run sees another's cached kinds.
fn cache_dir(kubeconfig: &Path) -> std::path::PathBuf {
    kubeconfig.with_file_name("kube-cache")
}

async fn ok(kubeconfig: &Path, args: &[&str]) -> String {
    let (success, stdout, stderr) = kubectl(kubeconfig, args).await;
    assert!(success, "kubectl {args:?} failed:\n{stderr}\n{stdout}");
    stdout
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p.to_string_lossy().into_owned()
}

const SERVICE_YAML: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
  labels:
    app: web
spec:
  type: LoadBalancer
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
";

#[tokio::test]
async fn kubectl_create_get_apply_and_delete() {
    within(async {
        let c = Cluster::start().await;
        let kc = c.kubeconfig();
        let file = write(c.dir.path(), "svc.yaml", SERVICE_YAML);

        let out = ok(&kc, &["create", "-f", &file]).await;
        assert_eq!(out.trim(), "service/web created");

        let json_out = ok(&kc, &["get", "svc", "web", "-o", "json"]).await;
        let svc: Value = serde_json::from_str(&json_out).unwrap();
        assert_eq!(svc["spec"]["type"], "LoadBalancer");
        assert!(svc["spec"]["clusterIP"]
            .as_str()
            .unwrap()
            .starts_with("198.18."));
        assert!(svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap() >= 30000);

        let yaml_out = ok(&kc, &["get", "svc", "web", "-o", "yaml"]).await;
        assert!(yaml_out.contains("name: web"));

        let table = ok(&kc, &["get", "svc", "-o", "wide"]).await;
        let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(
            header,
            [
                "NAME",
                "TYPE",
                "CLUSTER-IP",
                "EXTERNAL-IP",
                "PORT(S)",
                "AGE",
                "SELECTOR"
            ]
        );
        let row = table
            .lines()
            .find(|l| l.starts_with("web "))
            .expect("a row for web");
        assert!(
            row.contains("LoadBalancer") && row.contains("<pending>") && row.contains("app=web"),
            "{row}"
        );

        // Server-side apply of a changed file: the new label lands, allocations stay.
        let changed =
            SERVICE_YAML.replace("    app: web\nspec", "    app: web\n    tier: front\nspec");
        let file2 = write(c.dir.path(), "svc2.yaml", &changed);
        let out = ok(&kc, &["apply", "--server-side", "-f", &file2]).await;
        assert_eq!(out.trim(), "service/web serverside-applied");
        let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
        let live = svcs.get("web").await.unwrap();
        assert_eq!(live.metadata.labels.unwrap()["tier"], "front");
        assert_eq!(
            live.spec.unwrap().cluster_ip.as_deref(),
            svc["spec"]["clusterIP"].as_str()
        );

        let (success, _, stderr) = kubectl(&kc, &["create", "-f", &file]).await;
        assert!(!success);
        assert!(
            stderr.contains("AlreadyExists") || stderr.contains("already exists"),
            "{stderr}"
        );

        let out = ok(&kc, &["delete", "svc", "web"]).await;
        assert_eq!(out.trim(), "service \"web\" deleted");
        assert!(svcs.get_opt("web").await.unwrap().is_none());
        let (success, _, stderr) = kubectl(&kc, &["get", "svc", "web"]).await;
        assert!(!success && stderr.contains("NotFound"), "{stderr}");
    })
    .await
}

#[tokio::test]
async fn kubectl_reports_invalid_objects_with_the_field() {
    within(async {
        let c = Cluster::start().await;
        let kc = c.kubeconfig();
        let bad = SERVICE_YAML.replace("port: 80", "port: 0");
        let file = write(c.dir.path(), "bad.yaml", &bad);
        let (success, _, stderr) = kubectl(&kc, &["create", "-f", &file]).await;
        assert!(!success);
        assert!(
            stderr.contains("is invalid") && stderr.contains("spec.ports[0].port"),
            "{stderr}"
        );
    })
    .await
}

#[tokio::test]
async fn kubectl_applies_a_crd_then_its_objects() {
    within(async {
        let c = Cluster::start().await;
        let kc = c.kubeconfig();
        let crd = serde_yaml::to_string(&crate::crds::pool_crd()).unwrap();
        let crd_file = write(c.dir.path(), "crd.yaml", &crd);
        let out = ok(&kc, &["apply", "--server-side", "-f", &crd_file]).await;
        assert!(out.contains("customresourcedefinition.apiextensions.k8s.io/ippools.ironlb.io serverside-applied"), "{out}");
        let pool = "apiVersion: ironlb.io/v1alpha1\nkind: IPPool\nmetadata:\n  name: lan\nspec:\n  addresses: [192.0.2.0/24]\n";
        let pool_file = write(c.dir.path(), "pool.yaml", pool);
        // Discovery is cached by kubectl between runs; a fresh CRD must still be found.
        let out = ok(&kc, &["apply", "--server-side", "-f", &pool_file]).await;
        assert_eq!(out.trim(), "ippool.ironlb.io/lan serverside-applied");
        let got: Value = serde_json::from_str(&ok(&kc, &["get", "ipp", "lan", "-o", "json"]).await).unwrap();
        assert_eq!(got["spec"]["autoAssign"], true);
        let table = ok(&kc, &["get", "ippools"]).await;
        assert!(table.lines().next().unwrap().contains("ADDRESSES"), "{table}");
    })
    .await
}

#[tokio::test]
async fn kubectl_get_watch_prints_changes_until_its_timeout() {
    within(async {
        let c = Cluster::start().await;
        let kc = c.kubeconfig();
        let watch = tokio::process::Command::new(KUBECTL)
            .arg("--kubeconfig")
            .arg(&kc)
            .arg("--cache-dir")
            .arg(cache_dir(&kc))
            .args([
                "get",
                "svc",
                "-w",
                "-o",
                "json",
                "--request-timeout=0",
                "--output-watch-events",
            ])
            .env_remove("KUBECONFIG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("kubectl starts");
        // Wait until the watch has listed (the kubernetes Service shows up), then change things.
        let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
        eventually(|| {
            let reqs = c.server.requests();
            async move {
                reqs.iter()
                    .any(|r| r.verb == "watch" && r.resource == "services")
                    .then_some(())
            }
        })
        .await;
        let svc: Service = serde_yaml::from_str(SERVICE_YAML).unwrap();
        svcs.create(&PostParams::default(), &svc).await.unwrap();
        let mut relabel = svcs.get("web").await.unwrap();
        relabel
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("v".into(), "2".into());
        svcs.replace("web", &PostParams::default(), &relabel)
            .await
            .unwrap();
        svcs.delete("web", &Default::default()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        // Stop kubectl and read what it printed.
        let pid = watch.id().expect("running") as i32;
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
        let out = watch.wait_with_output().await.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let events: Vec<Value> = serde_json::Deserializer::from_str(&stdout)
            .into_iter::<Value>()
            .map(|v| v.unwrap())
            .collect();
        let seen: Vec<(String, String)> = events
            .iter()
            .map(|e| {
                (
                    e["type"].as_str().unwrap_or("").to_string(),
                    e["object"]["metadata"]["name"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
            })
            .collect();
        let web: Vec<&str> = seen
            .iter()
            .filter(|(_, n)| n == "web")
            .map(|(t, _)| t.as_str())
            .collect();
        assert_eq!(
            web,
            ["ADDED", "MODIFIED", "DELETED"],
            "all events: {seen:?}"
        );
        assert!(seen.contains(&("ADDED".into(), "kubernetes".into())));
    })
    .await
}

#[tokio::test]
async fn kubectl_get_watch_in_table_form() {
    within(async {
        let c = Cluster::start().await;
        let kc = c.kubeconfig();
        let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
        let created = tokio::spawn({
            let svcs = svcs.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                let svc: Service = serde_yaml::from_str(SERVICE_YAML).unwrap();
                svcs.create(&PostParams::default(), &svc).await.unwrap();
            }
        });
        let (_, stdout, stderr) = kubectl(&kc, &["get", "svc", "-w", "--request-timeout=4s"]).await;
        created.await.unwrap();
        let lines: Vec<&str> = stdout.lines().collect();
        assert!(
            lines[0].starts_with("NAME") && lines[0].contains("CLUSTER-IP"),
            "{stdout}\n{stderr}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("web ") && l.contains("LoadBalancer")),
            "{stdout}\n{stderr}"
        );
        let _ = json!(null);
    })
    .await
}

#[tokio::test]
async fn kubectl_rejects_unknown_fields_of_custom_resources_like_a_real_server() {
    within(async {
        let c = Cluster::start().await;
        let kc = c.kubeconfig();
        let crd = serde_yaml::to_string(&crate::crds::pool_crd()).unwrap();
        ok(&kc, &["apply", "--server-side", "-f", &write(c.dir.path(), "crd.yaml", &crd)]).await;
        let typo = "apiVersion: ironlb.io/v1alpha1\nkind: IPPool\nmetadata:\n  name: lan\nspec:\n  addresses: []\n  autoAsign: false\n";
        let (success, _, stderr) = kubectl(&kc, &["create", "-f", &write(c.dir.path(), "typo.yaml", typo)]).await;
        assert!(!success);
        assert!(stderr.contains("unknown field \"spec.autoAsign\""), "{stderr}");
    })
    .await
}

#[tokio::test]
async fn kubectl_describe_shows_a_service_and_its_events() {
    within(async {
        let c = Cluster::start().await;
        let kc = c.kubeconfig();
        ok(&kc, &["create", "-f", &write(c.dir.path(), "svc.yaml", SERVICE_YAML)]).await;
        let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(c.client.clone(), "default");
        let svc: Service = Api::namespaced(c.client.clone(), "default").get("web").await.unwrap();
        let ev: k8s_openapi::api::core::v1::Event = serde_json::from_value(json!({
            "metadata": {"name": "web.1"},
            "involvedObject": {"kind": "Service", "namespace": "default", "name": "web", "uid": svc.metadata.uid, "apiVersion": "v1"},
            "reason": "IPAllocated", "message": "Assigned IP 192.0.2.10", "type": "Normal",
            "source": {"component": "ironlb-controller"}, "count": 1,
            "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
        events.create(&PostParams::default(), &ev).await.unwrap();
        let out = ok(&kc, &["describe", "svc", "web"]).await;
        assert!(out.contains("LoadBalancer"), "{out}");
        assert!(out.contains("IPAllocated") && out.contains("Assigned IP 192.0.2.10"), "{out}");
    })
    .await
}

#[tokio::test]
async fn the_charts_crds_install_with_kubectl_and_validate_pools() {
    within(async {
        let crds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charts/ironlb/crds/ironlb-crds.yaml");
        let c = Cluster::start().await;
        let kc = c.kubeconfig();
        let out = ok(&kc, &["apply", "--server-side", "-f", crds.to_str().unwrap()]).await;
        assert!(out.contains("ippools.ironlb.io serverside-applied"), "{out}");
        let pool = "apiVersion: ironlb.io/v1alpha1\nkind: IPPool\nmetadata:\n  name: lan\nspec:\n  addresses:\n  - 192.0.2.0/24\n  - 2001:db8:1::/120\n";
        ok(&kc, &["apply", "--server-side", "-f", &write(c.dir.path(), "pool.yaml", pool)]).await;
        let got: Value = serde_json::from_str(&ok(&kc, &["get", "ippool", "lan", "-o", "json"]).await).unwrap();
        assert_eq!(got["spec"]["autoAssign"], true, "schema default applied");
        let table = ok(&kc, &["get", "ippools"]).await;
        assert!(table.lines().next().unwrap().contains("ADDRESSES"), "{table}");
        let bad = pool.replace("192.0.2.0/24", "the whole lan");
        let (success, _, stderr) = kubectl(&kc, &["apply", "--server-side", "-f", &write(c.dir.path(), "bad.yaml", &bad)]).await;
        assert!(!success && stderr.contains("spec.addresses[0]"), "{stderr}");
    })
    .await
}
