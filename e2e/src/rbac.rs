//! RBAC proven, not guessed: Kubernetes' RBAC rule matching over the chart's rendered
//! Roles and bindings, applied to the requests the embedded API server recorded.
//!
//! Pure: YAML documents and [`Request`]s in, the requests that no rule allows out.

use serde_yaml::Value;
use std::collections::BTreeSet;

/// One API request as RBAC sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Request {
    pub user: String,
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    /// "" for cluster-scoped requests (and for lists across all namespaces).
    pub namespace: String,
    pub name: String,
}

impl Request {
    /// The request a component made, as the API server recorded it.
    pub fn from_recorded(r: &ironlb_apiserver::RecordedRequest) -> Request {
        Request {
            user: r.user.clone(),
            verb: r.verb.clone(),
            group: r.group.clone(),
            resource: r.resource.clone(),
            subresource: r.subresource.clone(),
            namespace: r.namespace.clone(),
            name: r.name.clone(),
        }
    }
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let res = if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        };
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        write!(f, "{} {} {}", self.verb, group, res)?;
        if !self.namespace.is_empty() {
            write!(f, " in {}", self.namespace)?;
        }
        if !self.name.is_empty() {
            write!(f, " name={}", self.name)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default)]
struct Rule {
    verbs: Vec<String>,
    groups: Vec<String>,
    resources: Vec<String>,
    names: Vec<String>,
}

impl Rule {
    fn allows(&self, r: &Request) -> bool {
        let any = |list: &[String], v: &str| list.iter().any(|x| x == "*" || x == v);
        let resource = if r.subresource.is_empty() {
            r.resource.clone()
        } else {
            format!("{}/{}", r.resource, r.subresource)
        };
        any(&self.verbs, &r.verb)
            && any(&self.groups, &r.group)
            && (self.resources.iter().any(|x| {
                x == "*"
                    || *x == resource
                    || (x == &format!("{}/*", r.resource) && !r.subresource.is_empty())
            }))
            && (self.names.is_empty() || (!r.name.is_empty() && self.names.contains(&r.name)))
    }
}

#[derive(Debug, Clone)]
struct Role {
    kind: String,
    namespace: String,
    name: String,
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Binding {
    /// "" for ClusterRoleBindings.
    namespace: String,
    role_kind: String,
    role_name: String,
    /// Users (service accounts as `system:serviceaccount:ns:name`).
    subjects: Vec<String>,
}

impl Binding {
    /// Whether the binding reaches a request in `namespace` (a ClusterRoleBinding
    /// reaches every namespace).
    fn covers(&self, namespace: &str) -> bool {
        self.namespace.is_empty() || self.namespace == namespace
    }
}

/// The RBAC objects of a set of manifests.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    roles: Vec<Role>,
    bindings: Vec<Binding>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for key in path {
        cur = &cur[*key];
    }
    cur.as_str().unwrap_or("")
}

impl Policy {
    /// Reads Roles, ClusterRoles and their bindings from multi-document YAML.
    pub fn from_manifests(yaml: &str) -> anyhow::Result<Policy> {
        let mut policy = Policy::default();
        for doc in serde_yaml::Deserializer::from_str(yaml) {
            let v = Value::deserialize(doc)?;
            match v["kind"].as_str().unwrap_or("") {
                kind @ ("Role" | "ClusterRole") => policy.roles.push(Role {
                    kind: kind.to_string(),
                    namespace: str_at(&v, &["metadata", "namespace"]).to_string(),
                    name: str_at(&v, &["metadata", "name"]).to_string(),
                    rules: v["rules"]
                        .as_sequence()
                        .map(|rules| {
                            rules
                                .iter()
                                .map(|r| Rule {
                                    verbs: strings(&r["verbs"]),
                                    groups: strings(&r["apiGroups"]),
                                    resources: strings(&r["resources"]),
                                    names: strings(&r["resourceNames"]),
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                }),
                kind @ ("RoleBinding" | "ClusterRoleBinding") => {
                    let namespace = if kind == "RoleBinding" {
                        str_at(&v, &["metadata", "namespace"])
                    } else {
                        ""
                    };
                    let subjects = v["subjects"]
                        .as_sequence()
                        .map(|subjects| {
                            subjects
                                .iter()
                                .map(|s| match s["kind"].as_str() {
                                    Some("ServiceAccount") => format!(
                                        "system:serviceaccount:{}:{}",
                                        str_at(s, &["namespace"]),
                                        str_at(s, &["name"])
                                    ),
                                    _ => str_at(s, &["name"]).to_string(),
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    policy.bindings.push(Binding {
                        namespace: namespace.to_string(),
                        role_kind: str_at(&v, &["roleRef", "kind"]).to_string(),
                        role_name: str_at(&v, &["roleRef", "name"]).to_string(),
                        subjects,
                    });
                }
                _ => {}
            }
        }
        Ok(policy)
    }

    /// Whether some binding of `r.user` grants the request (as the real authorizer:
    /// ClusterRoleBindings everywhere, RoleBindings only in their namespace).
    pub fn allows(&self, r: &Request) -> bool {
        self.bindings_of(&r.user)
            .filter(|b| b.covers(&r.namespace))
            .any(|b| {
                self.roles_of(b)
                    .any(|role| role.rules.iter().any(|rule| rule.allows(r)))
            })
    }

    /// The bindings whose subjects include `user`.
    fn bindings_of<'a>(&'a self, user: &'a str) -> impl Iterator<Item = &'a Binding> {
        self.bindings
            .iter()
            .filter(move |b| b.subjects.iter().any(|s| s == user))
    }

    /// The roles a binding refers to (a RoleBinding's Role is in its own namespace).
    fn roles_of<'a>(&'a self, b: &'a Binding) -> impl Iterator<Item = &'a Role> {
        self.roles
            .iter()
            .filter(|role| role.kind == b.role_kind && role.name == b.role_name)
            .filter(|role| role.kind == "ClusterRole" || role.namespace == b.namespace)
    }

    /// The distinct requests of `user` that nothing allows.
    pub fn denied<'a>(
        &self,
        user: &str,
        requests: impl IntoIterator<Item = &'a Request>,
    ) -> BTreeSet<Request> {
        requests
            .into_iter()
            .filter(|r| r.user == user && !self.allows(r))
            .cloned()
            .collect()
    }

    /// What the bindings of `user` grant that none of its `requests` used: one entry
    /// per role, verb, API group and resource (`ClusterRole x: patch events.k8s.io
    /// events`), sorted. A report for people: a permission a rare path needs (a
    /// fallback, a retry) shows up here when the scenario did not take that path.
    pub fn unused<'a>(
        &self,
        user: &str,
        requests: impl IntoIterator<Item = &'a Request>,
    ) -> BTreeSet<String> {
        let mine: Vec<&Request> = requests.into_iter().filter(|r| r.user == user).collect();
        let mut unused = BTreeSet::new();
        for b in self.bindings_of(user) {
            for role in self.roles_of(b) {
                for rule in &role.rules {
                    for verb in &rule.verbs {
                        for group in &rule.groups {
                            for resource in &rule.resources {
                                let one = Rule {
                                    verbs: vec![verb.clone()],
                                    groups: vec![group.clone()],
                                    resources: vec![resource.clone()],
                                    names: rule.names.clone(),
                                };
                                if mine.iter().any(|r| b.covers(&r.namespace) && one.allows(r)) {
                                    continue;
                                }
                                let group = if group.is_empty() { "core" } else { group };
                                let mut line = format!(
                                    "{} {}: {verb} {group} {resource}",
                                    role.kind, role.name
                                );
                                if !b.namespace.is_empty() {
                                    line.push_str(&format!(" in {}", b.namespace));
                                }
                                if !rule.names.is_empty() {
                                    line.push_str(&format!(" names={}", rule.names.join(",")));
                                }
                                unused.insert(line);
                            }
                        }
                    }
                }
            }
        }
        unused
    }
}

use serde::Deserialize as _;

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFESTS: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: ctl}
rules:
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [services/status]
  verbs: [patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ctl}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: ctl}
subjects: [{kind: ServiceAccount, name: ctl, namespace: sys}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: ctl-lease, namespace: sys}
rules:
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, update]
  resourceNames: [ironlb-controller]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: ctl-lease, namespace: sys}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: ctl-lease}
subjects: [{kind: ServiceAccount, name: ctl, namespace: sys}]
"#;

    fn req(verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Request {
        Request {
            user: "system:serviceaccount:sys:ctl".into(),
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
        }
    }

    #[test]
    fn cluster_role_allows_its_verbs_everywhere_and_nothing_else() {
        let p = Policy::from_manifests(MANIFESTS).unwrap();
        assert!(p.allows(&req("list", "", "services", "", "", "")));
        assert!(p.allows(&req("watch", "", "services", "", "default", "")));
        assert!(!p.allows(&req("delete", "", "services", "", "default", "web")));
        assert!(!p.allows(&req("list", "", "secrets", "", "", "")));
    }

    #[test]
    fn subresources_must_be_named() {
        let p = Policy::from_manifests(MANIFESTS).unwrap();
        assert!(p.allows(&req("patch", "", "services", "status", "default", "web")));
        assert!(!p.allows(&req("patch", "", "services", "", "default", "web")));
    }

    #[test]
    fn role_binding_is_limited_to_its_namespace_and_resource_names() {
        let p = Policy::from_manifests(MANIFESTS).unwrap();
        assert!(p.allows(&req(
            "update",
            "coordination.k8s.io",
            "leases",
            "",
            "sys",
            "ironlb-controller"
        )));
        assert!(!p.allows(&req(
            "update",
            "coordination.k8s.io",
            "leases",
            "",
            "other",
            "ironlb-controller"
        )));
        assert!(!p.allows(&req(
            "update",
            "coordination.k8s.io",
            "leases",
            "",
            "sys",
            "someone-else"
        )));
        // resourceNames never allow create or list (no name in the request).
        assert!(!p.allows(&req("get", "coordination.k8s.io", "leases", "", "sys", "")));
    }

    #[test]
    fn unused_lists_each_granted_verb_no_request_needed() {
        let p = Policy::from_manifests(MANIFESTS).unwrap();
        let made = [
            req("list", "", "services", "", "", ""),
            req("watch", "", "services", "", "", ""),
            req("patch", "", "services", "status", "default", "web"),
            req(
                "update",
                "coordination.k8s.io",
                "leases",
                "",
                "sys",
                "ironlb-controller",
            ),
            // Another user's request uses nothing of ours.
            Request {
                user: "system:serviceaccount:sys:other".into(),
                ..req("get", "", "services", "", "default", "web")
            },
        ];
        let unused: Vec<String> = p
            .unused("system:serviceaccount:sys:ctl", &made)
            .into_iter()
            .collect();
        assert_eq!(
            unused,
            [
                "ClusterRole ctl: get core services",
                "Role ctl-lease: get coordination.k8s.io leases in sys names=ironlb-controller",
            ]
        );
    }

    #[test]
    fn other_users_get_nothing() {
        let p = Policy::from_manifests(MANIFESTS).unwrap();
        let mut r = req("list", "", "services", "", "", "");
        r.user = "system:serviceaccount:sys:other".into();
        assert!(!p.allows(&r));
        assert_eq!(p.denied(&r.user.clone(), [&r]).len(), 1);
    }
}
