//! An embedded Kubernetes API server for IronLB's end-to-end tests, lab and benchmarks.
//!
//! It speaks the Kubernetes REST API over plain HTTP with bearer tokens, faithfully enough
//! for kube-rs (watcher, reflector, Controller, server-side apply, events, leases) and
//! `kubectl` (create, get, apply --server-side, delete, get -w) for the kinds IronLB uses,
//! plus any kind defined by a CustomResourceDefinition created through it.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let server = ironlb_apiserver::ApiServer::start(Default::default()).await?;
//! server.write_kubeconfig(std::path::Path::new("/tmp/kubeconfig"), server.admin_token())?;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod convert;
pub mod crd;
pub mod error;
pub mod kubeconfig;
pub mod openapi;
pub mod ops;
pub mod patch;
pub mod registry;
pub mod selectors;
pub mod server;
pub mod services;
pub mod store;
pub mod table;
pub mod tls;
pub mod validation;
pub mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use tokio_util::sync::CancellationToken;

pub use error::{ApiError, Cause};
pub use ops::Cluster;
pub use server::RecordedRequest;
pub use services::Cidr;

/// User name of the built-in admin token.
pub const ADMIN_USER: &str = "admin";

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ApiServerConfig {
    /// Address to listen on; `127.0.0.1:0` picks a free port.
    pub listen: SocketAddr,
    /// Extra (token, user name) pairs; an admin token is always added.
    pub tokens: Vec<(String, String)>,
    /// IPv4 service range (clusterIPs).
    pub service_cidr_v4: Cidr,
    /// IPv6 service range (clusterIPs).
    pub service_cidr_v6: Cidr,
    /// BOOKMARK period for watches that allow bookmarks.
    pub bookmark_interval: Duration,
    /// Changes kept per resource for watch resume; older resourceVersions get 410 Gone.
    pub history_limit: usize,
}

impl Default for ApiServerConfig {
    fn default() -> Self {
        ApiServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tokens: Vec::new(),
            service_cidr_v4: "198.18.0.0/16".parse().expect("valid CIDR"),
            service_cidr_v6: "2001:db8:ffff::/112".parse().expect("valid CIDR"),
            bookmark_interval: Duration::from_secs(1),
            history_limit: 100_000,
        }
    }
}

/// A running server. Dropping it (or [`ApiServer::shutdown`]) stops it.
pub struct ApiServer {
    shared: Arc<server::Shared>,
    url: String,
    admin_token: String,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer").field("url", &self.url).finish()
    }
}

impl ApiServer {
    /// Bind, bootstrap the cluster (namespaces `default`, `kube-system`, `kube-public`,
    /// `kube-node-lease`, the `default/kubernetes` Service) and serve.
    pub async fn start(cfg: ApiServerConfig) -> anyhow::Result<ApiServer> {
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("binding the API server to {}", cfg.listen))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let allocator = services::ServiceAllocator::new(cfg.service_cidr_v4, cfg.service_cidr_v6);
        let cluster = Arc::new(Cluster::new(store::Store::new(
            allocator,
            cfg.history_limit,
        )));
        let svc_info = cluster.info("", "v1", "services").expect("built-in kind");
        let kubernetes = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": cfg.service_cidr_v4.at(1).to_string(), "ports": [{"name": "https", "port": 443, "targetPort": 6443}]},
        });
        cluster
            .create(
                &svc_info,
                Some("default"),
                kubernetes,
                &ops::WriteOpts::default(),
            )
            .map_err(|e| anyhow::anyhow!("creating the kubernetes Service: {e}"))?;
        let tokens = auth::Tokens::default();
        let admin_token = tokens.issue(ADMIN_USER);
        for (token, user) in &cfg.tokens {
            tokens.insert(token, user);
        }
        let shared = Arc::new(server::Shared {
            cluster,
            tokens,
            requests: Mutex::new(Vec::new()),
            shutdown: CancellationToken::new(),
            bookmark_every: cfg.bookmark_interval,
            tls: tls::ServerTls::generate()?,
        });
        tokio::spawn(server::serve(listener, shared.clone()));
        tracing::info!(%addr, "embedded API server listening");
        Ok(ApiServer {
            shared,
            url: format!("https://{addr}"),
            admin_token,
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// `https://127.0.0.1:PORT` (kubectl sends bearer tokens only over TLS; the CA is in
    /// every kubeconfig this server writes, see [`ApiServer::ca_pem`]).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The same port spoken as plain HTTP, `http://127.0.0.1:PORT`, for raw test clients.
    pub fn http_url(&self) -> String {
        self.url.replacen("https://", "http://", 1)
    }

    /// PEM of the CA that signed the serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.shared.tls.ca_pem
    }

    /// The token of the built-in `admin` user.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// A fresh token for `user` (e.g. `system:serviceaccount:ironlb:controller`).
    pub fn add_user(&self, user: &str) -> String {
        self.shared.tokens.issue(user)
    }

    /// A kubeconfig for `token` against `server_url` (e.g. `https://192.0.2.1:6443` for a
    /// listener inside a netns: the certificate is then checked against the in-cluster
    /// name `kubernetes.default.svc` via `tls-server-name`).
    pub fn kubeconfig_yaml(&self, token: &str, server_url: &str) -> String {
        kubeconfig::kubeconfig_yaml(server_url, token, Some(&self.shared.tls.ca_pem))
    }

    /// Write a kubeconfig for `token` against [`ApiServer::url`].
    pub fn write_kubeconfig(&self, path: &Path, token: &str) -> anyhow::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml(token, &self.url))
            .with_context(|| format!("writing kubeconfig {}", path.display()))
    }

    /// Serve on an extra listener too (e.g. one bound inside a node's network namespace).
    pub fn serve_listener(&self, l: std::net::TcpListener) {
        let shared = self.shared.clone();
        let _guard = self.runtime.enter();
        if let Err(e) = l.set_nonblocking(true) {
            tracing::warn!(error = %e, "cannot make the extra listener non-blocking");
            return;
        }
        match tokio::net::TcpListener::from_std(l) {
            Ok(listener) => {
                self.runtime.spawn(server::serve(listener, shared));
            }
            Err(e) => tracing::warn!(error = %e, "cannot serve on the extra listener"),
        }
    }

    /// Every authenticated resource request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Forget the requests recorded so far (to look at one phase of a test alone).
    pub fn clear_requests(&self) {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Direct access to objects and kinds (for tests).
    pub fn store(&self) -> &Arc<Cluster> {
        &self.shared.cluster
    }

    /// Stop serving: listeners close and open watches end.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Run a server alone until killed (`ironlb-lab apiserver --listen ... --kubeconfig ...`).
pub async fn run_standalone(listen: SocketAddr, kubeconfig_path: &Path) -> anyhow::Result<()> {
    let shutdown = ironlb_runtime::signals::Shutdown::install()?;
    let server = ApiServer::start(ApiServerConfig {
        listen,
        ..ApiServerConfig::default()
    })
    .await?;
    server.write_kubeconfig(kubeconfig_path, server.admin_token())?;
    println!("API server: {}", server.url());
    println!("kubeconfig: {}", kubeconfig_path.display());
    shutdown.recv().await;
    Ok(())
}
