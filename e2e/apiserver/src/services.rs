//! What the real API server does to Services: defaults, validation, clusterIP and
//! nodePort allocation. The allocator is plain data; the functions take the Service as a
//! JSON value and either fix it up or return the field errors the real server reports.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::{json, Value};

use crate::error::Cause;
use crate::validation::{is_dns1123_label, is_qualified_name};

/// A CIDR used as a service IP range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR"))?;
        let addr: IpAddr = a.parse().map_err(|e| format!("{s:?}: {e}"))?;
        let prefix: u8 = p.parse().map_err(|e| format!("{s:?}: {e}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(format!("{s:?}: prefix longer than {max}"));
        }
        Ok(Cidr { addr, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Cidr {
    fn base(&self) -> u128 {
        match self.addr {
            IpAddr::V4(a) => u32::from(a) as u128,
            IpAddr::V6(a) => u128::from(a),
        }
    }
    fn bits(&self) -> u32 {
        if self.addr.is_ipv4() {
            32
        } else {
            128
        }
    }
    /// Number of addresses, capped so that arithmetic stays in u128.
    fn size(&self) -> u128 {
        let host_bits = self.bits() - self.prefix as u32;
        if host_bits >= 127 {
            u128::MAX / 2
        } else {
            1u128 << host_bits
        }
    }
    /// The address `offset` places after the network address.
    pub fn at(&self, offset: u128) -> IpAddr {
        let v = self.base() + offset;
        if self.addr.is_ipv4() {
            IpAddr::V4(Ipv4Addr::from(v as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(v))
        }
    }
    /// Whether `ip` lies inside.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        let v = match (ip, self.addr) {
            (IpAddr::V4(a), IpAddr::V4(_)) => u32::from(*a) as u128,
            (IpAddr::V6(a), IpAddr::V6(_)) => u128::from(*a),
            _ => return false,
        };
        v >= self.base() && v - self.base() < self.size()
    }
}

/// The NodePort range of a default cluster.
pub const NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;

/// Allocation state of service IPs (per family) and node ports.
#[derive(Debug, Clone)]
pub struct ServiceAllocator {
    v4: Cidr,
    v6: Cidr,
    used_ips: HashSet<IpAddr>,
    next_v4: u128,
    next_v6: u128,
    used_ports: HashSet<u16>,
    next_port: u16,
}

impl ServiceAllocator {
    /// An allocator over the two ranges; the network address and the first host (the
    /// `kubernetes` Service's address on a real cluster) are never handed out by search.
    pub fn new(v4: Cidr, v6: Cidr) -> ServiceAllocator {
        ServiceAllocator {
            v4,
            v6,
            used_ips: HashSet::new(),
            next_v4: 2,
            next_v6: 2,
            used_ports: HashSet::new(),
            next_port: *NODE_PORTS.start(),
        }
    }

    fn range(&self, v6: bool) -> Cidr {
        if v6 {
            self.v6
        } else {
            self.v4
        }
    }

    /// The next free IP of a family.
    pub fn allocate_ip(&mut self, v6: bool) -> Option<IpAddr> {
        let range = self.range(v6);
        let size = range.size();
        // Skip the network address and, for v4, the broadcast address.
        let usable = if v6 { size - 1 } else { size.saturating_sub(2) };
        let start = if v6 { self.next_v6 } else { self.next_v4 };
        for i in 0..usable.min(1 << 20) {
            let offset = 1 + (start - 1 + i) % usable;
            let ip = range.at(offset);
            if self.used_ips.insert(ip) {
                let next = offset + 1;
                if v6 {
                    self.next_v6 = next;
                } else {
                    self.next_v4 = next;
                }
                return Some(ip);
            }
        }
        None
    }

    /// Take a specific IP; errors name why.
    pub fn reserve_ip(&mut self, ip: IpAddr) -> Result<(), String> {
        let range = self.range(ip.is_ipv6());
        if !range.contains(&ip) {
            return Err(format!("failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {range}"));
        }
        if !self.used_ips.insert(ip) {
            return Err(format!(
                "failed to allocate IP {ip}: provided IP is already allocated"
            ));
        }
        Ok(())
    }

    /// Give an IP back.
    pub fn release_ip(&mut self, ip: &IpAddr) {
        self.used_ips.remove(ip);
    }

    /// The next free node port.
    pub fn allocate_port(&mut self) -> Option<u16> {
        let n = NODE_PORTS.len() as u16;
        for i in 0..n {
            let port = NODE_PORTS.start() + (self.next_port - NODE_PORTS.start() + i) % n;
            if self.used_ports.insert(port) {
                self.next_port = if port == *NODE_PORTS.end() {
                    *NODE_PORTS.start()
                } else {
                    port + 1
                };
                return Some(port);
            }
        }
        None
    }

    /// Take a specific node port.
    pub fn reserve_port(&mut self, port: u16) -> Result<(), String> {
        if !NODE_PORTS.contains(&port) {
            return Err(format!(
                "provided port is not in the valid range. The range of valid ports is {}-{}",
                NODE_PORTS.start(),
                NODE_PORTS.end()
            ));
        }
        if !self.used_ports.insert(port) {
            return Err("provided port is already allocated".into());
        }
        Ok(())
    }

    /// Give a node port back.
    pub fn release_port(&mut self, port: u16) {
        self.used_ports.remove(&port);
    }

    /// Release everything a stored Service holds.
    pub fn release_service(&mut self, svc: &Value) {
        for ip in cluster_ips(svc) {
            self.release_ip(&ip);
        }
        for port in node_ports(svc) {
            self.release_port(port);
        }
        if let Some(p) = svc
            .pointer("/spec/healthCheckNodePort")
            .and_then(Value::as_u64)
        {
            self.release_port(p as u16);
        }
    }
}

fn cluster_ips(svc: &Value) -> Vec<IpAddr> {
    svc.pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

fn node_ports(svc: &Value) -> Vec<u16> {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| p.get("nodePort")?.as_u64())
                .map(|p| p as u16)
                .collect()
        })
        .unwrap_or_default()
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str)
}

fn needs_node_ports(spec: &Value) -> bool {
    match spec.get("type").and_then(Value::as_str) {
        Some("NodePort") => true,
        Some("LoadBalancer") => {
            spec.get("allocateLoadBalancerNodePorts")
                .and_then(Value::as_bool)
                != Some(false)
        }
        _ => false,
    }
}

/// Fill in the defaults the real server applies (before validation).
fn default_spec(svc: &mut Value) {
    if !svc.get("spec").is_some_and(Value::is_object) {
        svc["spec"] = json!({});
    }
    let spec = &mut svc["spec"];
    if spec.get("type").is_none() {
        spec["type"] = json!("ClusterIP");
    }
    let ty = spec["type"].as_str().unwrap_or("").to_string();
    if spec.get("sessionAffinity").is_none() {
        spec["sessionAffinity"] = json!("None");
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports {
            if port.get("protocol").is_none() {
                port["protocol"] = json!("TCP");
            }
            if port.get("targetPort").is_none() {
                if let Some(p) = port.get("port").cloned() {
                    port["targetPort"] = p;
                }
            }
        }
    }
    if ty == "ExternalName" {
        return;
    }
    if matches!(ty.as_str(), "NodePort" | "LoadBalancer")
        && spec.get("externalTrafficPolicy").is_none()
    {
        spec["externalTrafficPolicy"] = json!("Cluster");
    }
    if ty == "LoadBalancer" && spec.get("allocateLoadBalancerNodePorts").is_none() {
        spec["allocateLoadBalancerNodePorts"] = json!(true);
    }
    if spec.get("internalTrafficPolicy").is_none() {
        spec["internalTrafficPolicy"] = json!("Cluster");
    }
    // clusterIP and clusterIPs describe the same thing; make them agree.
    let cip = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let has_ips = spec
        .get("clusterIPs")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if !cip.is_empty() && !has_ips {
        spec["clusterIPs"] = json!([cip]);
    } else if cip.is_empty() && has_ips {
        spec["clusterIP"] = spec["clusterIPs"][0].clone();
    }
    if spec.get("ipFamilyPolicy").is_none() {
        spec["ipFamilyPolicy"] = json!("SingleStack");
    }
    let policy = spec["ipFamilyPolicy"].as_str().unwrap_or("").to_string();
    let has_families = spec
        .get("ipFamilies")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if !has_families {
        let mut fams: Vec<&str> = spec
            .get("clusterIPs")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str()?.parse::<IpAddr>().ok())
                    .map(|ip| if ip.is_ipv6() { "IPv6" } else { "IPv4" })
                    .collect()
            })
            .unwrap_or_default();
        if fams.is_empty() {
            fams.push("IPv4");
        }
        if policy != "SingleStack" && fams.len() == 1 {
            fams.push(if fams[0] == "IPv4" { "IPv6" } else { "IPv4" });
        }
        spec["ipFamilies"] = json!(fams);
    } else if policy != "SingleStack" {
        let fams = spec["ipFamilies"].as_array().cloned().unwrap_or_default();
        if fams.len() == 1 {
            let other = if fams[0] == "IPv6" { "IPv4" } else { "IPv6" };
            spec["ipFamilies"] = json!([fams[0], other]);
        }
    }
}

fn is_iana_svc_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && s.chars().any(|c| c.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// Field errors of a (defaulted) Service spec; `old` is the stored object on update.
pub fn validate(svc: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut c = Vec::new();
    let spec = svc.get("spec").cloned().unwrap_or(json!({}));
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    let allowed_types = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    if !allowed_types.contains(&ty) {
        c.push(Cause::not_supported(
            "spec.type",
            format!("\"{ty}\""),
            &allowed_types,
        ));
    }
    let cip = spec.get("clusterIP").and_then(Value::as_str).unwrap_or("");
    let headless = cip == "None";
    let ports = spec
        .get("ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if ports.is_empty() && ty != "ExternalName" && !headless {
        c.push(Cause::required("spec.ports"));
    }
    if ty == "ExternalName" {
        let en = spec
            .get("externalName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if en.is_empty() {
            c.push(Cause::required("spec.externalName"));
        }
    }
    let mut names = HashSet::new();
    let mut port_protos = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let f = |s: &str| format!("spec.ports[{i}].{s}");
        let name = port.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() {
            if ports.len() > 1 {
                c.push(Cause::required(f("name")));
            }
        } else if !is_dns1123_label(name) {
            c.push(Cause::invalid(f("name"), format!("\"{name}\""), "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"));
        } else if !names.insert(name.to_string()) {
            c.push(Cause::duplicate(f("name"), format!("\"{name}\"")));
        }
        let num = port.get("port").and_then(Value::as_i64).unwrap_or(0);
        if !(1..=65535).contains(&num) {
            c.push(Cause::invalid(
                f("port"),
                num,
                "must be between 1 and 65535, inclusive",
            ));
        }
        let proto = port
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("TCP");
        if !["TCP", "UDP", "SCTP"].contains(&proto) {
            c.push(Cause::not_supported(
                f("protocol"),
                format!("\"{proto}\""),
                &["SCTP", "TCP", "UDP"],
            ));
        }
        if !port_protos.insert((num, proto.to_string())) {
            c.push(Cause::duplicate(
                format!("spec.ports[{i}]"),
                format!("{{port: {num}, protocol: {proto}}}"),
            ));
        }
        match port.get("targetPort") {
            Some(Value::Number(n)) => {
                let t = n.as_i64().unwrap_or(0);
                if !(1..=65535).contains(&t) {
                    c.push(Cause::invalid(
                        f("targetPort"),
                        t,
                        "must be between 1 and 65535, inclusive",
                    ));
                }
            }
            Some(Value::String(s)) if !is_iana_svc_name(s) => {
                c.push(Cause::invalid(f("targetPort"), format!("\"{s}\""), "must contain only lower case alphanumeric characters or '-', at most 15 characters, and at least one letter"));
            }
            _ => {}
        }
        if let Some(np) = port.get("nodePort").and_then(Value::as_i64) {
            if np != 0 && ty == "ClusterIP" {
                c.push(Cause::forbidden(
                    f("nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            } else if np != 0
                && !(NODE_PORTS.start().to_owned() as i64..=*NODE_PORTS.end() as i64).contains(&np)
            {
                c.push(Cause::invalid(f("nodePort"), np, "provided port is not in the valid range. The range of valid ports is 30000-32767"));
            }
        }
    }
    for (field, allowed) in [
        ("sessionAffinity", &["ClientIP", "None"][..]),
        ("externalTrafficPolicy", &["Cluster", "Local"][..]),
        ("internalTrafficPolicy", &["Cluster", "Local"][..]),
        (
            "ipFamilyPolicy",
            &["PreferDualStack", "RequireDualStack", "SingleStack"][..],
        ),
    ] {
        if let Some(v) = spec.get(field).and_then(Value::as_str) {
            if !allowed.contains(&v) {
                c.push(Cause::not_supported(
                    format!("spec.{field}"),
                    format!("\"{v}\""),
                    allowed,
                ));
            }
        }
    }
    if spec.get("externalTrafficPolicy").is_some() && !matches!(ty, "NodePort" | "LoadBalancer") {
        c.push(Cause::invalid(
            "spec.externalTrafficPolicy",
            format!(
                "\"{}\"",
                spec["externalTrafficPolicy"].as_str().unwrap_or("")
            ),
            "may only be set when `type` is 'NodePort' or 'LoadBalancer'",
        ));
    }
    if let Some(class) = spec.get("loadBalancerClass").and_then(Value::as_str) {
        if ty != "LoadBalancer" {
            c.push(Cause::forbidden(
                "spec.loadBalancerClass",
                "may only be used when `type` is 'LoadBalancer'",
            ));
        } else if !is_qualified_name(class) {
            c.push(Cause::invalid("spec.loadBalancerClass", format!("\"{class}\""), "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
        }
    }
    if let Some(fams) = spec.get("ipFamilies").and_then(Value::as_array) {
        let mut seen = HashSet::new();
        for (i, f) in fams.iter().enumerate() {
            let s = f.as_str().unwrap_or("");
            if !["IPv4", "IPv6"].contains(&s) {
                c.push(Cause::not_supported(
                    format!("spec.ipFamilies[{i}]"),
                    format!("\"{s}\""),
                    &["IPv4", "IPv6"],
                ));
            } else if !seen.insert(s) {
                c.push(Cause::duplicate(
                    format!("spec.ipFamilies[{i}]"),
                    format!("\"{s}\""),
                ));
            }
        }
        if fams.len() > 1
            && spec.get("ipFamilyPolicy").and_then(Value::as_str) == Some("SingleStack")
        {
            c.push(Cause::invalid(
                "spec.ipFamilies",
                format!("{fams:?}"),
                "when spec.ipFamilyPolicy is SingleStack, only one ipFamily is allowed",
            ));
        }
    }
    if !cip.is_empty() && !headless && cip.parse::<IpAddr>().is_err() {
        c.push(Cause::invalid(
            "spec.clusterIPs[0]",
            format!("\"{cip}\""),
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ));
    }
    if let Some(old) = old {
        let old_spec = &old["spec"];
        let old_ty = old_spec
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP");
        let old_cip = old_spec
            .get("clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("");
        if old_ty != "ExternalName" && ty != "ExternalName" && !old_cip.is_empty() && cip != old_cip
        {
            c.push(Cause::invalid(
                "spec.clusterIPs[0]",
                format!("\"{cip}\""),
                "may not change once set",
            ));
        }
        let old_class = old_spec.get("loadBalancerClass").and_then(Value::as_str);
        let new_class = spec.get("loadBalancerClass").and_then(Value::as_str);
        if old_ty == "LoadBalancer" && ty == "LoadBalancer" && old_class != new_class {
            c.push(Cause::invalid(
                "spec.loadBalancerClass",
                format!("\"{}\"", new_class.unwrap_or("")),
                "may not change once set",
            ));
        }
    }
    c
}

/// Copy what the client could not know from the stored Service (the real server's
/// `patchAllocatedValues`): clusterIP(s), ipFamilies and nodePorts of unchanged ports.
fn patch_allocated_values(new: &mut Value, old: &Value) {
    let new_ty = str_at(new, "/spec/type").unwrap_or("ClusterIP").to_string();
    let old_ty = str_at(old, "/spec/type").unwrap_or("ClusterIP");
    if new_ty != "ExternalName" && old_ty != "ExternalName" {
        if str_at(new, "/spec/clusterIP").unwrap_or("").is_empty() {
            if let Some(ip) = old.pointer("/spec/clusterIP").cloned() {
                new["spec"]["clusterIP"] = ip;
            }
            if let Some(ips) = old.pointer("/spec/clusterIPs").cloned() {
                new["spec"]["clusterIPs"] = ips;
            }
        }
        if new.pointer("/spec/ipFamilies").is_none() {
            if let Some(f) = old.pointer("/spec/ipFamilies").cloned() {
                new["spec"]["ipFamilies"] = f;
            }
        }
        if new.pointer("/spec/ipFamilyPolicy").is_none() {
            if let Some(f) = old.pointer("/spec/ipFamilyPolicy").cloned() {
                new["spec"]["ipFamilyPolicy"] = f;
            }
        }
    }
    if needs_node_ports(&new["spec"]) {
        let old_ports = old
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for port in ports {
                if port.get("nodePort").and_then(Value::as_u64).unwrap_or(0) != 0 {
                    continue;
                }
                let same = old_ports.iter().find(|o| {
                    o.get("port") == port.get("port")
                        && o.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                            == port
                                .get("protocol")
                                .and_then(Value::as_str)
                                .unwrap_or("TCP")
                });
                if let Some(np) = same.and_then(|o| o.get("nodePort")) {
                    port["nodePort"] = np.clone();
                }
            }
        }
    }
}

/// Create: default, validate, allocate. On error nothing stays allocated.
pub fn prepare_create(svc: &mut Value, alloc: &mut ServiceAllocator) -> Result<(), Vec<Cause>> {
    default_spec(svc);
    let causes = validate(svc, None);
    if !causes.is_empty() {
        return Err(causes);
    }
    let mut journal = Vec::new();
    if let Err(e) = allocate(svc, None, alloc, &mut journal) {
        alloc.undo(journal);
        return Err(e);
    }
    finish_status(svc);
    Ok(())
}

/// Update: keep allocated values, default, validate, allocate new node ports and release
/// the ones no longer used.
pub fn prepare_update(
    new: &mut Value,
    old: &Value,
    alloc: &mut ServiceAllocator,
) -> Result<(), Vec<Cause>> {
    if new.get("spec").is_none() {
        new["spec"] = json!({});
    }
    patch_allocated_values(new, old);
    drop_type_dependent_fields(new, old);
    default_spec(new);
    let causes = validate(new, Some(old));
    if !causes.is_empty() {
        return Err(causes);
    }
    // Free the old values first so that kept ones re-reserve; undo exactly on failure.
    alloc.release_service(old);
    let mut journal = Vec::new();
    if let Err(e) = allocate(new, Some(old), alloc, &mut journal) {
        alloc.undo(journal);
        alloc.restore_service(old);
        return Err(e);
    }
    finish_status(new);
    Ok(())
}

/// The real server's `dropTypeDependentFields`: node ports the client merely carried over
/// from the old object go away when the new type does not use them.
fn drop_type_dependent_fields(new: &mut Value, old: &Value) {
    let new_ty = str_at(new, "/spec/type").unwrap_or("ClusterIP").to_string();
    let old_ty = str_at(old, "/spec/type").unwrap_or("ClusterIP").to_string();
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    // Only values carried over unchanged from the old object are dropped.
    let drop_if_same = |spec: &mut serde_json::Map<String, Value>, field: &str| {
        if spec.get(field).is_some() && spec.get(field) == old["spec"].get(field) {
            spec.remove(field);
        }
    };
    if new_ty != "LoadBalancer" && old_ty == "LoadBalancer" {
        drop_if_same(spec, "loadBalancerClass");
        drop_if_same(spec, "allocateLoadBalancerNodePorts");
    }
    if !matches!(new_ty.as_str(), "NodePort" | "LoadBalancer") {
        drop_if_same(spec, "externalTrafficPolicy");
    }
    if needs_node_ports(&Value::Object(spec.clone())) || !needs_node_ports(&old["spec"]) {
        return;
    }
    let old_ports = node_ports(old);
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports {
            let np = port.get("nodePort").and_then(Value::as_u64).unwrap_or(0) as u16;
            if old_ports.contains(&np) {
                if let Some(m) = port.as_object_mut() {
                    m.remove("nodePort");
                }
            }
        }
    }
}

fn finish_status(svc: &mut Value) {
    if svc.get("status").is_none() {
        svc["status"] = json!({"loadBalancer": {}});
    }
}

/// What one allocation attempt took, so that a failure can give it all back.
#[derive(Debug)]
enum Held {
    Ip(IpAddr),
    Port(u16),
}

impl ServiceAllocator {
    fn undo(&mut self, journal: Vec<Held>) {
        for h in journal {
            match h {
                Held::Ip(ip) => self.release_ip(&ip),
                Held::Port(p) => self.release_port(p),
            }
        }
    }

    /// Mark everything a stored Service holds as taken again (undoing a release).
    pub fn restore_service(&mut self, svc: &Value) {
        for ip in cluster_ips(svc) {
            self.used_ips.insert(ip);
        }
        for port in node_ports(svc) {
            self.used_ports.insert(port);
        }
        if let Some(p) = svc
            .pointer("/spec/healthCheckNodePort")
            .and_then(Value::as_u64)
        {
            self.used_ports.insert(p as u16);
        }
    }
}

fn allocate(
    svc: &mut Value,
    old: Option<&Value>,
    alloc: &mut ServiceAllocator,
    journal: &mut Vec<Held>,
) -> Result<(), Vec<Cause>> {
    let spec = &mut svc["spec"];
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if ty == "ExternalName" {
        if let Some(m) = spec.as_object_mut() {
            for k in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
                m.remove(k);
            }
        }
    } else if spec.get("clusterIP").and_then(Value::as_str) == Some("None") {
        spec["clusterIPs"] = json!(["None"]);
    } else {
        let fams: Vec<String> = spec["ipFamilies"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let mut ips: Vec<String> = spec
            .get("clusterIPs")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        for (i, ip) in ips.iter().enumerate() {
            let parsed: IpAddr = ip.parse().map_err(|_| {
                vec![Cause::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    format!("\"{ip}\""),
                    "must be a valid IP address",
                )]
            })?;
            if fams
                .get(i)
                .is_some_and(|f| (f == "IPv6") != parsed.is_ipv6())
            {
                return Err(vec![Cause::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    format!("\"{ip}\""),
                    "expected an IP of the family in spec.ipFamilies",
                )]);
            }
            alloc
                .reserve_ip(parsed)
                .map_err(|e| vec![Cause::invalid("spec.clusterIPs", format!("[\"{ip}\"]"), &e)])?;
            journal.push(Held::Ip(parsed));
        }
        for fam in fams.iter().skip(ips.len()) {
            let ip = alloc.allocate_ip(fam == "IPv6").ok_or_else(|| {
                vec![Cause::invalid(
                    "spec.clusterIPs",
                    "[]",
                    "failed to allocate IP: range is full",
                )]
            })?;
            journal.push(Held::Ip(ip));
            ips.push(ip.to_string());
        }
        spec["clusterIP"] = json!(ips[0]);
        spec["clusterIPs"] = json!(ips);
    }
    let wants_ports = needs_node_ports(spec);
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for (i, port) in ports.iter_mut().enumerate() {
            let np = port.get("nodePort").and_then(Value::as_u64).unwrap_or(0) as u16;
            if np != 0 {
                alloc.reserve_port(np).map_err(|e| {
                    vec![Cause::invalid(format!("spec.ports[{i}].nodePort"), np, &e)]
                })?;
                journal.push(Held::Port(np));
            } else if wants_ports {
                let p = alloc.allocate_port().ok_or_else(|| {
                    vec![Cause::invalid(
                        format!("spec.ports[{i}].nodePort"),
                        0,
                        "range is full",
                    )]
                })?;
                journal.push(Held::Port(p));
                port["nodePort"] = json!(p);
            }
        }
    }
    let local_lb = ty == "LoadBalancer"
        && spec.get("externalTrafficPolicy").and_then(Value::as_str) == Some("Local");
    if local_lb {
        let kept = old
            .and_then(|o| o.pointer("/spec/healthCheckNodePort"))
            .and_then(Value::as_u64)
            .map(|p| p as u16);
        let requested = spec
            .get("healthCheckNodePort")
            .and_then(Value::as_u64)
            .map(|p| p as u16)
            .or(kept);
        let port = match requested {
            Some(p) if p != 0 => {
                alloc
                    .reserve_port(p)
                    .map_err(|e| vec![Cause::invalid("spec.healthCheckNodePort", p, &e)])?;
                p
            }
            _ => alloc.allocate_port().ok_or_else(|| {
                vec![Cause::invalid(
                    "spec.healthCheckNodePort",
                    0,
                    "range is full",
                )]
            })?,
        };
        journal.push(Held::Port(port));
        spec["healthCheckNodePort"] = json!(port);
    } else if let Some(m) = spec.as_object_mut() {
        m.remove("healthCheckNodePort");
    }
    Ok(())
}

#[cfg(test)]
#[path = "services_tests.rs"]
mod tests;
