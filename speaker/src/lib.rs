//! ironlb-speaker announces assigned IPs on the LAN with ARP and NDP.
//!
//! Thin glue around pure decisions:
//! * [`plan`]: which IPs exist, which nodes may announce each, who owns it (rendezvous
//!   election over live speakers), on which interfaces;
//! * [`report`]: the `ironlb.io/announced` condition and who writes it;
//! * [`membership`]: liveness from authenticated UDP heartbeats;
//! * [`announcer`]: the raw sockets (answers, gratuitous announcements);
//! * [`control`]: watches → plan → announcers, status and Events.

pub mod announcer;
pub mod control;
pub mod membership;
pub mod metrics;
pub mod plan;
pub mod report;

use std::time::Duration;

use ironlb_runtime::{CommonArgs, Process};
use prometheus_client::registry::Registry;

/// Command-line options of `ironlb-speaker`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "ironlb-speaker",
    version,
    about = "IronLB: announces assigned IPs on the LAN with ARP and NDP"
)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Name of the node this speaker runs on (the Downward API's spec.nodeName).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: String,

    /// Namespace of the speaker Pods (peer discovery) and, by default, of the Secret.
    #[arg(long, env = "POD_NAMESPACE", default_value = "ironlb-system")]
    pub namespace: String,

    /// `namespace/name` of the Secret whose key `key` authenticates heartbeats.
    /// Default: `<namespace>/ironlb-memberlist`.
    #[arg(long)]
    pub memberlist_secret: Option<String>,

    /// UDP port of the heartbeats (the same on every node).
    #[arg(long, default_value_t = 7473)]
    pub heartbeat_port: u16,

    /// Heartbeat period (`100ms`, `1s`).
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,

    /// A peer heard from and then silent this long is dead.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub dead_after: Duration,

    /// Re-announce owned IPs this often after the takeover burst (`0` = never). Keep
    /// it well under switches' MAC ageing (commonly 300 s).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub announce_refresh: Duration,

    /// Announce Services' `spec.externalIPs` too (only inside the allowed CIDRs: any
    /// user who can create a Service can set them, CVE-2020-8554).
    #[arg(long)]
    pub externalips_enabled: bool,

    /// A CIDR inside which externalIPs may be announced (repeatable).
    #[arg(long = "externalips-allowed-cidr", value_parser = parse_cidr)]
    pub externalips_allowed_cidr: Vec<plan::Cidr>,

    /// Interface names or glob patterns to announce on, overriding the
    /// L2Announcements' (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    pub interfaces: Vec<String>,

    /// Label selector of the speaker Pods in `--namespace` (peer discovery).
    #[arg(long, default_value = "app.kubernetes.io/component=speaker")]
    pub speaker_selector: String,
}

impl Args {
    /// `(namespace, name)` of the memberlist Secret.
    pub fn secret(&self) -> anyhow::Result<(String, String)> {
        match &self.memberlist_secret {
            None => Ok((self.namespace.clone(), "ironlb-memberlist".into())),
            Some(s) => match s.split_once('/') {
                Some((ns, name)) if !ns.is_empty() && !name.is_empty() => {
                    Ok((ns.to_string(), name.to_string()))
                }
                _ => anyhow::bail!("--memberlist-secret '{s}' is not namespace/name"),
            },
        }
    }
}

/// Parses `250ms`, `1s`, `2m`, `1.5s` or `0`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("'{s}' needs a unit (ms, s, m)"))?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (ms, s, m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("'{s}': {e}"))
}

fn parse_cidr(s: &str) -> Result<plan::Cidr, String> {
    s.parse()
}

/// Runs until SIGTERM/SIGINT.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut registry = Registry::with_prefix("ironlb");
    let metrics = metrics::Metrics::register(&mut registry);
    let process = Process::start("ironlb-speaker", &args.common, registry).await?;
    control::run(args, process, metrics).await?;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("100").is_err());
        assert!(parse_duration("1h").is_err());
    }

    #[test]
    fn flags_have_the_documented_defaults() {
        let a = Args::try_parse_from(["ironlb-speaker", "--node-name", "node1"]).unwrap();
        assert_eq!(a.heartbeat_port, 7473);
        assert_eq!(a.heartbeat_interval, Duration::from_millis(100));
        assert_eq!(a.dead_after, Duration::from_millis(500));
        assert_eq!(a.announce_refresh, Duration::from_secs(60));
        assert!(!a.externalips_enabled);
        assert_eq!(
            a.secret().unwrap(),
            ("ironlb-system".to_string(), "ironlb-memberlist".to_string())
        );
        let a = Args::try_parse_from([
            "ironlb-speaker",
            "--node-name=n",
            "--interfaces=eth0,bond*",
            "--externalips-allowed-cidr=198.51.100.0/24",
            "--externalips-allowed-cidr=2001:db8::/32",
            "--memberlist-secret=kube-system/ml",
        ])
        .unwrap();
        assert_eq!(a.interfaces, ["eth0", "bond*"]);
        assert_eq!(a.externalips_allowed_cidr.len(), 2);
        assert_eq!(a.secret().unwrap().1, "ml");
    }
}
