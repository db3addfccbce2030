//! The Helm chart, rendered with default values and every `ci/*-values.yaml`, is
//! accepted object by object by an API server that checks them (kubectl apply
//! --server-side against the embedded API server).

use ironlb_e2e::support::TestCluster;
use ironlb_e2e::tools::{repo_root, run};

fn value_files() -> Vec<Option<String>> {
    let mut files = vec![None];
    let ci = repo_root().join("charts/ironlb/ci");
    let mut found: Vec<String> = std::fs::read_dir(&ci)
        .expect("charts/ironlb/ci exists")
        .filter_map(|e| e.ok().map(|e| e.path().display().to_string()))
        .filter(|p| p.ends_with("-values.yaml"))
        .collect();
    found.sort();
    files.extend(found.into_iter().map(Some));
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rendered_object_is_accepted_by_the_api_server() {
    let chart = repo_root().join("charts/ironlb");
    for values in value_files() {
        let mut args = vec![
            "template",
            "ironlb",
            chart.to_str().unwrap(),
            "--namespace",
            "ironlb-system",
            "--include-crds",
        ];
        if let Some(v) = &values {
            args.extend(["-f", v.as_str()]);
        }
        let rendered = run("helm", &args).expect("helm template");
        let cluster = TestCluster::start().await.unwrap();
        let file = cluster.dir().join("rendered.yaml");
        std::fs::write(&file, &rendered).unwrap();
        let kubeconfig = cluster.admin_kubeconfig();
        let kc = kubeconfig.to_str().unwrap();
        run(
            "kubectl",
            &["--kubeconfig", kc, "create", "namespace", "ironlb-system"],
        )
        .unwrap();
        let out = run(
            "kubectl",
            &[
                "--kubeconfig",
                kc,
                "apply",
                "--server-side",
                "-f",
                file.to_str().unwrap(),
            ],
        )
        .unwrap_or_else(|e| panic!("values {values:?}: {e}"));
        let applied = out.lines().count();
        let documents =
            rendered.matches("\nkind: ").count() + usize::from(rendered.starts_with("kind: "));
        assert!(
            applied >= documents,
            "values {values:?}: {applied} objects applied of {documents}:\n{out}"
        );
        // What was stored reads back.
        let back = run(
            "kubectl",
            &[
                "--kubeconfig",
                kc,
                "get",
                "-n",
                "ironlb-system",
                "serviceaccounts,services,secrets",
                "-o",
                "name",
            ],
        )
        .unwrap();
        assert!(
            back.contains("serviceaccount/ironlb-controller"),
            "values {values:?}: {back}"
        );
        assert!(
            back.contains("serviceaccount/ironlb-speaker"),
            "values {values:?}: {back}"
        );
    }
}
