//! Shared helpers: a running server plus a kube client for it.

use std::future::Future;
use std::time::Duration;

use ironlb_apiserver::{ApiServer, ApiServerConfig};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// A server, an admin client, and a directory for kubeconfigs.
pub struct Cluster {
    pub server: ApiServer,
    pub client: Client,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    pub async fn start() -> Cluster {
        Self::start_with(ApiServerConfig::default()).await
    }

    pub async fn start_with(cfg: ApiServerConfig) -> Cluster {
        let server = ApiServer::start(cfg).await.expect("server starts");
        let client = client_for(&server, server.admin_token()).await;
        Cluster {
            server,
            client,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A kubeconfig file for the admin user.
    pub fn kubeconfig(&self) -> std::path::PathBuf {
        let path = self.dir.path().join("kubeconfig");
        self.server
            .write_kubeconfig(&path, self.server.admin_token())
            .expect("kubeconfig written");
        path
    }
}

/// A kube client authenticating with `token`, built from the server's kubeconfig.
pub async fn client_for(server: &ApiServer, token: &str) -> Client {
    let yaml = server.kubeconfig_yaml(token, &server.url());
    let kc = Kubeconfig::from_yaml(&yaml).expect("kubeconfig parses");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig loads");
    Client::try_from(config).expect("client builds")
}

/// Run a test body with a generous timeout so that a bug hangs no one.
pub async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("test finished within 60s")
}

/// The HTTP status code of a kube API error.
pub fn code(e: &kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Poll `check` until it returns Some, for at most 20 seconds.
pub async fn eventually<T, F, Fut>(mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached within 20s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
