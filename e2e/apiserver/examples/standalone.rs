//! `cargo run -p ironlb-apiserver --example standalone -- 127.0.0.1:6443 /tmp/kubeconfig`
//! runs the embedded API server alone, as `ironlb-lab apiserver` does.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:6443".into())
        .parse()?;
    let kubeconfig = args.next().unwrap_or_else(|| "kubeconfig".into());
    ironlb_apiserver::run_standalone(listen, std::path::Path::new(&kubeconfig)).await
}
