//! A kube client found the usual way: an explicit kubeconfig path, else KUBECONFIG,
//! ~/.kube/config, then the in-cluster service account.

use anyhow::Context as _;
use std::path::Path;

/// Builds a client. `kubeconfig` wins when given; otherwise kube's inference applies.
pub async fn client(kubeconfig: Option<&Path>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("loading kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no kubeconfig found (KUBECONFIG, ~/.kube/config) and not in a cluster")?,
    };
    kube::Client::try_from(config).context("building the Kubernetes client")
}
