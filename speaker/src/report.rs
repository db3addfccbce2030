//! What the speaker tells people, pure: the `ironlb.io/announced` condition of each
//! Service and who writes it.
//!
//! One writer per Service, so N speakers do not fight: the owner of the Service's first
//! owned IP writes True; when nobody owns any of its IPs, the reporter (the lexically
//! first live speaker, see [`crate::plan::reporter`]) writes False with the reason.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::plan::{Plan, ServiceKey};

/// The condition one speaker should write on one Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The Service.
    pub service: ServiceKey,
    /// Condition status.
    pub announced: bool,
    /// CamelCase reason.
    pub reason: String,
    /// Human message naming the node(s) and interface(s).
    pub message: String,
}

/// The reports `me` must write. `my_interfaces` maps the IPs `me` owns to the
/// interfaces it announces them on (empty: owned but no interface matches);
/// `reporter` is the speaker that writes for Services nobody announces.
pub fn reports(
    plan: &Plan,
    me: &str,
    reporter: Option<&str>,
    my_interfaces: &BTreeMap<IpAddr, Vec<String>>,
) -> Vec<Report> {
    let mut out = Vec::new();
    for service in plan.services() {
        let ips: Vec<_> = plan.of_service(&service).collect();
        let writer = ips
            .iter()
            .find_map(|(_, p)| p.owner.as_ref().ok())
            .map(String::as_str)
            .or(reporter);
        if writer != Some(me) {
            continue;
        }
        let mut parts = Vec::new();
        let mut any = false;
        let mut stranded = false;
        let mut first_reason = None;
        for (ip, p) in &ips {
            match &p.owner {
                Ok(node) if node == me => match my_interfaces.get(ip).filter(|i| !i.is_empty()) {
                    Some(ifaces) => {
                        any = true;
                        parts.push(format!(
                            "{ip} announced by node {node} on interface {}",
                            ifaces.join(", ")
                        ));
                    }
                    None => {
                        stranded = true;
                        parts.push(format!(
                            "{ip} owned by node {node} but no interface of it matches"
                        ));
                    }
                },
                Ok(node) => {
                    any = true;
                    parts.push(format!("{ip} announced by node {node}"));
                }
                Err(why) => {
                    first_reason.get_or_insert(why.reason());
                    parts.push(format!("{ip} not announced: {why}"));
                }
            }
        }
        let reason = if any {
            "Announced"
        } else if stranded {
            "NoInterface"
        } else {
            first_reason.unwrap_or("NotAnnounced")
        };
        out.push(Report {
            service,
            announced: any,
            reason: reason.to_string(),
            message: parts.join("; "),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{IpPlan, NotAnnounced};

    fn key(name: &str) -> ServiceKey {
        ServiceKey {
            namespace: "default".into(),
            name: name.into(),
        }
    }

    fn plan_of(entries: &[(&str, &str, Result<&str, NotAnnounced>)]) -> Plan {
        let mut p = Plan::default();
        for (svc, ip, owner) in entries {
            p.ips.insert(
                ip.parse().unwrap(),
                IpPlan {
                    services: vec![key(svc)],
                    pool: Some("lan".into()),
                    eligible: vec!["node1".into(), "node2".into()],
                    owner: owner.clone().map(str::to_string),
                },
            );
        }
        p
    }

    #[test]
    fn the_owner_writes_true_with_its_node_and_interface() {
        let p = plan_of(&[("web", "192.0.2.100", Ok("node2"))]);
        let ifaces = BTreeMap::from([("192.0.2.100".parse().unwrap(), vec!["eth0".to_string()])]);
        let r = reports(&p, "node2", Some("node1"), &ifaces);
        assert_eq!(r.len(), 1);
        assert!(r[0].announced);
        assert_eq!(
            r[0].message,
            "192.0.2.100 announced by node node2 on interface eth0"
        );
        assert!(reports(&p, "node1", Some("node1"), &BTreeMap::new()).is_empty());
    }

    #[test]
    fn nobody_owning_makes_the_reporter_write_false_with_the_reason() {
        let why = NotAnnounced::NoL2Announcement {
            pool: Some("lan".into()),
        };
        let p = plan_of(&[("web", "192.0.2.100", Err(why))]);
        assert!(reports(&p, "node2", Some("node1"), &BTreeMap::new()).is_empty());
        let r = reports(&p, "node1", Some("node1"), &BTreeMap::new());
        assert!(!r[0].announced);
        assert_eq!(r[0].reason, "NoL2Announcement");
        assert_eq!(
            r[0].message,
            "192.0.2.100 not announced: no L2Announcement selects IPPool lan"
        );
    }

    #[test]
    fn an_owned_ip_without_interface_is_not_called_announced() {
        let p = plan_of(&[("web", "192.0.2.100", Ok("node1"))]);
        let r = reports(&p, "node1", Some("node1"), &BTreeMap::new());
        assert!(!r[0].announced);
        assert_eq!(r[0].reason, "NoInterface");
    }
}
