//! `ironlb-lab up` / `down`: a lab left running for your own experiments.
//!
//! `up` starts a detached `ironlb-lab serve` process that owns the lab (the embedded API
//! server lives in it), waits until it has written the lab's JSON description, prints
//! it and returns. `down` stops that process, which removes the lab; a named-lab sweep
//! then removes whatever a crashed server left behind.

use crate::demo::{Kubectl, EXTERNAL_IPS_ALLOWED, GATEWAY_EXTERNAL_IP};
use crate::lab_cluster::{service_ips, LabCluster, LabClusterConfig, SYSTEM_NAMESPACE};
use crate::support::fixtures::Svc;
use anyhow::{bail, Context as _};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Name of the lab `up` builds (its namespaces are `ilb-lab-<role>`).
pub const LAB_NAME: &str = "lab";

/// What `up` writes: the lab, and how to use it.
#[derive(Debug, Serialize, Deserialize)]
pub struct LabState {
    /// Pid of the `ironlb-lab serve` process that owns the lab.
    pub pid: u32,
    #[serde(flatten)]
    pub lab: ironlb_netlab::LabDescription,
    /// Admin kubeconfig for the lab's API server (usable from the root namespace).
    pub kubeconfig: PathBuf,
    /// The IPPool's addresses.
    pub pool: Vec<String>,
    /// Service `ns/name` → its IPs (status and external IPs), when `up` finished.
    pub vips: std::collections::BTreeMap<String, Vec<String>>,
    /// Logs of the IronLB processes.
    pub logs: PathBuf,
    /// Example commands.
    #[serde(rename = "try")]
    pub try_: Vec<String>,
}

/// `ironlb-lab up`: starts the server process detached and waits for its state file.
pub fn up(self_exe: &Path, state: &Path) -> anyhow::Result<()> {
    if state.exists() {
        bail!(
            "{} exists: a lab seems to be up already (run `ironlb-lab down` first)",
            state.display()
        );
    }
    let log = state.with_extension("log");
    let out = std::fs::File::create(&log)?;
    let mut cmd = std::process::Command::new(self_exe);
    cmd.arg("serve").arg("--state").arg(state);
    cmd.stdin(std::process::Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().context("starting `ironlb-lab serve`")?;
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            bail!(
                "`ironlb-lab serve` exited ({status}) before the lab was up; see {}",
                log.display()
            );
        }
        if let Ok(text) = std::fs::read_to_string(state) {
            if serde_json::from_str::<LabState>(&text).is_ok() {
                println!("{text}");
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("the lab was not up after 90 s; see {}", log.display())
}

/// `ironlb-lab down`: stops the server process and removes the lab's namespaces.
pub fn down(state: &Path) -> anyhow::Result<()> {
    if let Ok(text) = std::fs::read_to_string(state) {
        if let Ok(s) = serde_json::from_str::<LabState>(&text) {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(s.pid.to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline && Path::new(&format!("/proc/{}", s.pid)).exists() {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    let removed = ironlb_netlab::destroy_named(LAB_NAME)?;
    let _ = std::fs::remove_file(state);
    println!("lab down ({} leftover namespaces removed)", removed.len());
    Ok(())
}

/// `ironlb-lab serve`: owns the lab until SIGTERM.
pub async fn serve(repo: &Path, state: &Path) -> anyhow::Result<()> {
    // Installed first: a SIGTERM during set-up still tears the lab down (at the end).
    let shutdown = ironlb_runtime::signals::Shutdown::install()?;
    let lab = LabCluster::start(LabClusterConfig {
        name: Some(LAB_NAME.into()),
        gateways: true,
        external_ips_allowed: vec![EXTERNAL_IPS_ALLOWED.into()],
        ..Default::default()
    })
    .await?;
    // A stable admin kubeconfig next to the state file.
    let kubeconfig = state.with_extension("kubeconfig");
    std::fs::copy(lab.cluster.admin_kubeconfig(), &kubeconfig)?;
    let kubectl = Kubectl::new(repo, kubeconfig.clone());
    let pool = vec![
        ironlb_netlab::POOL_V4.to_string(),
        ironlb_netlab::POOL_V6.to_string(),
    ];
    let example = lab.dir().join("lab-pool.yaml");
    std::fs::write(
        &example,
        format!("apiVersion: ironlb.io/v1alpha1\nkind: IPPool\nmetadata:\n  name: lab\nspec:\n  addresses: [{}, {}]\n---\napiVersion: ironlb.io/v1alpha1\nkind: L2Announcement\nmetadata:\n  name: lab\nspec: {{}}  # every pool, and the allowed externalIPs\n---\napiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: ironlb\n  annotations:\n    ingressclass.kubernetes.io/is-default-class: \"true\"\nspec:\n  controller: ironlb.io/ingress-gateway\n", pool[0], pool[1]),
    )?;
    kubectl.run(&[
        "apply",
        "--server-side",
        "-f",
        &example.display().to_string(),
    ])?;
    lab.deploy_echo("default", "web", &[0, 1, 2], 8080).await?;
    let services: Api<Service> = Api::namespaced(lab.client(), "default");
    services
        .create(
            &PostParams::default(),
            &Svc::lb("web").ports([8080]).build(),
        )
        .await?;
    let gateway = Svc::lb("ironlb-gateway")
        .namespace(SYSTEM_NAMESPACE)
        .ports([80, 443])
        .external_ips(&[GATEWAY_EXTERNAL_IP])
        .build();
    Api::<Service>::namespaced(lab.client(), SYSTEM_NAMESPACE)
        .create(&PostParams::default(), &gateway)
        .await?;
    let web = lab
        .wait_for_ips("default", "web", 1, Duration::from_secs(30))
        .await?;
    let gw = lab
        .wait_for_ips(
            SYSTEM_NAMESPACE,
            "ironlb-gateway",
            1,
            Duration::from_secs(30),
        )
        .await?;
    let mut vips = std::collections::BTreeMap::new();
    for (ns, name) in [("default", "web"), (SYSTEM_NAMESPACE, "ironlb-gateway")] {
        let svc = Api::<Service>::namespaced(lab.client(), ns)
            .get(name)
            .await?;
        vips.insert(
            format!("{ns}/{name}"),
            service_ips(&svc).iter().map(|ip| ip.to_string()).collect(),
        );
    }
    let client_ns = lab.lab.client().netns.clone();
    let s = LabState {
        pid: std::process::id(),
        lab: lab.lab.description().clone(),
        kubeconfig: kubeconfig.clone(),
        pool,
        vips,
        logs: lab.dir().to_path_buf(),
        try_: vec![
            format!("ip netns exec {client_ns} curl -s http://{}:8080/", web[0]),
            format!("kubectl --kubeconfig {} get svc -A", kubeconfig.display()),
            format!("kubectl --kubeconfig {} apply -f my-ingress.yaml   # ingressClassName ironlb (default class)", kubeconfig.display()),
            format!("ip netns exec {client_ns} curl -s --resolve my.host.example:80:{} http://my.host.example/", gw[0]),
        ],
    };
    let tmp = state.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&s)?)?;
    std::fs::rename(&tmp, state)?;
    shutdown.recv().await;
    drop(lab);
    let _ = std::fs::remove_file(state);
    Ok(())
}
