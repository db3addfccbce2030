//! A "cluster" for tests: the embedded API server with IronLB's CRDs installed, an
//! admin client, and per-component kubeconfigs whose identities the server records.

use anyhow::Context as _;
use ironlb_apiserver::{ApiServer, ApiServerConfig};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use std::path::{Path, PathBuf};

/// The embedded API server plus what every test needs around it.
pub struct TestCluster {
    pub api: ApiServer,
    pub admin: kube::Client,
    dir: tempfile::TempDir,
}

impl TestCluster {
    /// Starts an API server on 127.0.0.1 with IronLB's CRDs installed (from the Rust
    /// types, which the CI check keeps identical to the chart's YAML).
    pub async fn start() -> anyhow::Result<TestCluster> {
        let api = ApiServer::start(ApiServerConfig::default()).await?;
        let dir = tempfile::tempdir()?;
        let admin_path = dir.path().join("admin.kubeconfig");
        api.write_kubeconfig(&admin_path, api.admin_token())?;
        let admin = ironlb_runtime::kube_client::client(Some(&admin_path)).await?;
        let cluster = TestCluster { api, admin, dir };
        cluster.install_crds().await?;
        Ok(cluster)
    }

    async fn install_crds(&self) -> anyhow::Result<()> {
        let crds: Api<CustomResourceDefinition> = Api::all(self.admin.clone());
        for crd in ironlb_api::crds() {
            let name = crd.metadata.name.clone().unwrap_or_default();
            crds.create(&PostParams::default(), &crd)
                .await
                .with_context(|| format!("installing CRD {name}"))?;
        }
        Ok(())
    }

    /// Writes a kubeconfig for a new identity (e.g. `system:serviceaccount:ironlb:controller`)
    /// and returns its path; requests made with it are recorded under that user.
    pub fn kubeconfig_for(&self, user: &str) -> anyhow::Result<PathBuf> {
        let token = self.api.add_user(user);
        let file = self
            .dir
            .path()
            .join(format!("{}.kubeconfig", sanitize(user)));
        self.api.write_kubeconfig(&file, &token)?;
        Ok(file)
    }

    /// The admin kubeconfig (for kubectl in tests).
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    /// A scratch directory that lives as long as the cluster.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn sanitize(user: &str) -> String {
    user.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}
