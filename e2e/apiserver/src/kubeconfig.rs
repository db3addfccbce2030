//! Kubeconfig files pointing at the embedded server.

use base64::Engine;

/// A kubeconfig with one cluster, one user (bearer token) and one current context.
/// `ca_pem` is the CA of an `https://` server; for an address other than loopback the
/// certificate is verified against the in-cluster name it carries (`tls-server-name`).
pub fn kubeconfig_yaml(server_url: &str, token: &str, ca_pem: Option<&str>) -> String {
    let mut tls = String::new();
    if let Some(ca) = ca_pem.filter(|_| server_url.starts_with("https://")) {
        let data = base64::engine::general_purpose::STANDARD.encode(ca);
        tls.push_str(&format!("    certificate-authority-data: {data}\n"));
        let host = server_url.trim_start_matches("https://");
        let loopback = host.starts_with("127.0.0.1:")
            || host.starts_with("[::1]:")
            || host.starts_with("localhost:");
        if !loopback {
            tls.push_str(&format!(
                "    tls-server-name: {}\n",
                crate::tls::SERVER_NAME
            ));
        }
    }
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: ironlb-lab
  cluster:
    server: {server_url}
{tls}contexts:
- name: ironlb-lab
  context:
    cluster: ironlb-lab
    user: ironlb-lab-user
    namespace: default
current-context: ironlb-lab
preferences: {{}}
users:
- name: ironlb-lab-user
  user:
    token: {token}
"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_kubeconfig_is_yaml_with_server_and_token() {
        let y = super::kubeconfig_yaml("http://127.0.0.1:1234", "abc", None);
        let v: serde_yaml::Value = serde_yaml::from_str(&y).unwrap();
        assert_eq!(
            v["clusters"][0]["cluster"]["server"].as_str(),
            Some("http://127.0.0.1:1234")
        );
        assert_eq!(v["users"][0]["user"]["token"].as_str(), Some("abc"));
        assert_eq!(v["current-context"].as_str(), Some("ironlb-lab"));
    }

    #[test]
    fn https_kubeconfigs_carry_the_ca_and_a_server_name_off_loopback() {
        let local = super::kubeconfig_yaml("https://127.0.0.1:1234", "abc", Some("PEM"));
        let v: serde_yaml::Value = serde_yaml::from_str(&local).unwrap();
        assert_eq!(
            v["clusters"][0]["cluster"]["certificate-authority-data"].as_str(),
            Some("UEVN")
        );
        assert!(v["clusters"][0]["cluster"]["tls-server-name"].is_null());
        let remote = super::kubeconfig_yaml("https://192.0.2.10:6443", "abc", Some("PEM"));
        let v: serde_yaml::Value = serde_yaml::from_str(&remote).unwrap();
        assert_eq!(
            v["clusters"][0]["cluster"]["tls-server-name"].as_str(),
            Some("kubernetes.default.svc")
        );
    }
}
