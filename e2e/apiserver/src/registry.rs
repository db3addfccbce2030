//! The kinds the server serves (built-in and CRD-defined) and the discovery documents
//! (`/api`, `/apis`, group/version resource lists) generated from them.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

/// Everything the server knows about one served resource at one version.
#[derive(Debug, Clone)]
pub struct ResourceInfo {
    /// API group, "" for core.
    pub group: String,
    /// Version, e.g. `v1`.
    pub version: String,
    /// Plural resource name, e.g. `services`.
    pub plural: String,
    /// Singular, e.g. `service`.
    pub singular: String,
    /// Kind, e.g. `Service`.
    pub kind: String,
    /// List kind, e.g. `ServiceList`.
    pub list_kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names, e.g. `svc`.
    pub short_names: Vec<String>,
    /// Categories, e.g. `all`.
    pub categories: Vec<String>,
    /// Whether a `/status` subresource exists (writes to it change only `.status`).
    pub status_subresource: bool,
    /// For custom resources: the structural schema of this version (`openAPIV3Schema`).
    pub schema: Option<Arc<Value>>,
    /// For custom resources: `additionalPrinterColumns`.
    pub printer_columns: Vec<Value>,
    /// True for CRD-defined kinds.
    pub custom: bool,
}

impl ResourceInfo {
    /// `apiVersion` string, `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Resource name qualified with its group as in error messages: `leases.coordination.k8s.io`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Storage key: objects of all versions of a resource share one collection.
    pub fn key(&self) -> ResKey {
        ResKey {
            group: self.group.clone(),
            plural: self.plural.clone(),
        }
    }

    /// Kinds whose `metadata.generation` the server maintains.
    pub fn tracks_generation(&self) -> bool {
        self.custom
            || matches!(
                self.kind.as_str(),
                "Service"
                    | "Pod"
                    | "Ingress"
                    | "IngressClass"
                    | "CustomResourceDefinition"
                    | "Node"
            )
    }

    /// Kinds for which a PUT on a missing object creates it (`AllowCreateOnUpdate`).
    pub fn allow_create_on_update(&self) -> bool {
        matches!(self.kind.as_str(), "Lease" | "Event" | "Endpoints")
    }
}

/// Collection key: (group, plural).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResKey {
    /// API group.
    pub group: String,
    /// Plural resource name.
    pub plural: String,
}

#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    short: &[&str],
    all: bool,
    status: bool,
) -> ResourceInfo {
    ResourceInfo {
        group: group.into(),
        version: version.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        kind: kind.into(),
        list_kind: format!("{kind}List"),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: if all { vec!["all".into()] } else { vec![] },
        status_subresource: status,
        schema: None,
        printer_columns: vec![],
        custom: false,
    }
}

/// The built-in kinds.
pub fn builtins() -> Vec<ResourceInfo> {
    vec![
        builtin(
            "",
            "v1",
            "namespaces",
            "Namespace",
            false,
            &["ns"],
            false,
            true,
        ),
        builtin("", "v1", "nodes", "Node", false, &["no"], false, true),
        builtin("", "v1", "services", "Service", true, &["svc"], true, true),
        builtin("", "v1", "pods", "Pod", true, &["po"], true, true),
        builtin("", "v1", "secrets", "Secret", true, &[], false, false),
        builtin(
            "",
            "v1",
            "configmaps",
            "ConfigMap",
            true,
            &["cm"],
            false,
            false,
        ),
        builtin(
            "",
            "v1",
            "endpoints",
            "Endpoints",
            true,
            &["ep"],
            false,
            false,
        ),
        builtin("", "v1", "events", "Event", true, &["ev"], false, false),
        builtin(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            true,
            &["sa"],
            false,
            false,
        ),
        builtin(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            true,
            &["ev"],
            false,
            false,
        ),
        builtin(
            "discovery.k8s.io",
            "v1",
            "endpointslices",
            "EndpointSlice",
            true,
            &[],
            false,
            false,
        ),
        builtin(
            "networking.k8s.io",
            "v1",
            "ingresses",
            "Ingress",
            true,
            &["ing"],
            false,
            true,
        ),
        builtin(
            "networking.k8s.io",
            "v1",
            "ingressclasses",
            "IngressClass",
            false,
            &[],
            false,
            false,
        ),
        builtin(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            true,
            &[],
            false,
            false,
        ),
        // Served so that the chart's rendered objects can be applied and checked.
        builtin(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            true,
            &["deploy"],
            true,
            true,
        ),
        builtin(
            "apps",
            "v1",
            "daemonsets",
            "DaemonSet",
            true,
            &["ds"],
            true,
            true,
        ),
        builtin(
            "policy",
            "v1",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            true,
            &["pdb"],
            false,
            true,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            "ClusterRole",
            false,
            &[],
            false,
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
            &[],
            false,
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "roles",
            "Role",
            true,
            &[],
            false,
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            "RoleBinding",
            true,
            &[],
            false,
            false,
        ),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            false,
            true,
        ),
    ]
}

/// All served resources, indexed for routing and discovery. Cheap to clone (Arc inside).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// group → version → plural → info.
    groups: BTreeMap<String, BTreeMap<String, BTreeMap<String, Arc<ResourceInfo>>>>,
    /// group → preferred version.
    preferred: BTreeMap<String, String>,
}

impl Registry {
    /// A registry holding the built-in kinds.
    pub fn with_builtins() -> Registry {
        let mut r = Registry::default();
        for info in builtins() {
            r.insert(info);
        }
        r
    }

    /// Serve a resource (replacing a previous definition at the same group/version/plural).
    pub fn insert(&mut self, info: ResourceInfo) {
        self.preferred
            .entry(info.group.clone())
            .or_insert_with(|| info.version.clone());
        self.groups
            .entry(info.group.clone())
            .or_default()
            .entry(info.version.clone())
            .or_default()
            .insert(info.plural.clone(), Arc::new(info));
    }

    /// Set the preferred (storage) version of a group.
    pub fn set_preferred(&mut self, group: &str, version: &str) {
        self.preferred.insert(group.into(), version.into());
    }

    /// Stop serving every version of `group`/`plural`.
    pub fn remove(&mut self, group: &str, plural: &str) {
        if let Some(versions) = self.groups.get_mut(group) {
            for resources in versions.values_mut() {
                resources.remove(plural);
            }
            versions.retain(|_, r| !r.is_empty());
            if versions.is_empty() {
                self.groups.remove(group);
                self.preferred.remove(group);
            } else if let Some(p) = self.preferred.get(group) {
                if !versions.contains_key(p) {
                    let first = versions.keys().next().cloned().unwrap_or_default();
                    self.preferred.insert(group.into(), first);
                }
            }
        }
    }

    /// Look a resource up.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.groups.get(group)?.get(version)?.get(plural).cloned()
    }

    /// Whether the group/version is served at all.
    pub fn has_version(&self, group: &str, version: &str) -> bool {
        self.groups
            .get(group)
            .is_some_and(|v| v.contains_key(version))
    }

    /// Every served (group, version, resource).
    pub fn all(&self) -> impl Iterator<Item = &Arc<ResourceInfo>> {
        self.groups
            .values()
            .flat_map(|v| v.values())
            .flat_map(|r| r.values())
    }

    /// `/api`.
    pub fn core_versions(&self, server_address: &str) -> Value {
        json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
        })
    }

    fn group_doc(&self, group: &str) -> Option<Value> {
        let versions = self.groups.get(group)?;
        let preferred = self.preferred.get(group).cloned().unwrap_or_default();
        let mut vs: Vec<&String> = versions.keys().collect();
        // Preferred version first, as the real server orders them.
        vs.sort_by_key(|v| (*v != &preferred, (*v).clone()));
        Some(json!({
            "name": group,
            "versions": vs.iter().map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v})).collect::<Vec<_>>(),
            "preferredVersion": {"groupVersion": format!("{group}/{preferred}"), "version": preferred},
        }))
    }

    /// `/apis`.
    pub fn group_list(&self) -> Value {
        let groups: Vec<Value> = self
            .groups
            .keys()
            .filter(|g| !g.is_empty())
            .filter_map(|g| self.group_doc(g))
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    /// `/apis/<group>`.
    pub fn group(&self, group: &str) -> Option<Value> {
        let mut doc = self.group_doc(group)?;
        doc["kind"] = json!("APIGroup");
        doc["apiVersion"] = json!("v1");
        Some(doc)
    }

    /// Aggregated discovery (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`): every group
    /// (or only the core group, for `/api`) with its versions and resources in one document.
    pub fn aggregated(&self, core: bool) -> Value {
        let mut items = Vec::new();
        for (group, versions) in &self.groups {
            if core != group.is_empty() {
                continue;
            }
            let preferred = self.preferred.get(group).cloned().unwrap_or_default();
            let mut names: Vec<&String> = versions.keys().collect();
            names.sort_by_key(|v| (*v != &preferred, (*v).clone()));
            let versions: Vec<Value> = names
                .into_iter()
                .map(|v| {
                    let resources: Vec<Value> = versions[v]
                        .values()
                        .map(|info| {
                            let kind = json!({"group": info.group, "version": info.version, "kind": info.kind});
                            let mut r = json!({
                                "resource": info.plural,
                                "responseKind": kind,
                                "scope": if info.namespaced { "Namespaced" } else { "Cluster" },
                                "singularResource": info.singular,
                                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                            });
                            if !info.short_names.is_empty() {
                                r["shortNames"] = json!(info.short_names);
                            }
                            if !info.categories.is_empty() {
                                r["categories"] = json!(info.categories);
                            }
                            if info.status_subresource {
                                r["subresources"] = json!([{"subresource": "status", "responseKind": kind, "verbs": ["get", "patch", "update"]}]);
                            }
                            r
                        })
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            items.push(json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions}));
        }
        json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
    }

    /// `/api/v1` or `/apis/<group>/<version>`.
    pub fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let resources = self.groups.get(group)?.get(version)?;
        let mut out = Vec::new();
        for info in resources.values() {
            let mut entry = json!({
                "name": info.plural,
                "singularName": info.singular,
                "namespaced": info.namespaced,
                "kind": info.kind,
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            });
            if !info.short_names.is_empty() {
                entry["shortNames"] = json!(info.short_names);
            }
            if !info.categories.is_empty() {
                entry["categories"] = json!(info.categories);
            }
            out.push(entry);
            if info.status_subresource {
                out.push(json!({
                    "name": format!("{}/status", info.plural),
                    "singularName": "",
                    "namespaced": info.namespaced,
                    "kind": info.kind,
                    "verbs": ["get", "patch", "update"],
                }));
            }
        }
        let gv = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        Some(
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}),
        )
    }
}
