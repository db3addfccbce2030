//! A plain Kubernetes label selector, so the allocator can pick pools by
//! `serviceSelector` / `namespaceSelector` without depending on kube types.

use std::collections::BTreeMap;

/// Labels of an object.
pub type Labels = BTreeMap<String, String>;

/// A label selector with Kubernetes semantics: every `match_labels` pair and every
/// expression must hold. An empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// `key: value` pairs that must all be present.
    pub match_labels: Labels,
    /// Set-based requirements that must all hold.
    pub match_expressions: Vec<SelectorRequirement>,
}

/// One `matchExpressions` entry. The operator is kept as written (`In`, `NotIn`,
/// `Exists`, `DoesNotExist`) so a bad one makes the pool Invalid with a message
/// instead of being rejected somewhere the user never sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectorRequirement {
    /// Label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// Values for `In` / `NotIn`.
    pub values: Vec<String>,
}

impl LabelSelector {
    /// A selector requiring exactly these labels.
    pub fn labels<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        LabelSelector {
            match_labels: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            match_expressions: Vec::new(),
        }
    }

    /// Checks operators and value counts as the apiserver would.
    pub fn validate(&self) -> Result<(), String> {
        for r in &self.match_expressions {
            match r.operator.as_str() {
                "In" | "NotIn" if r.values.is_empty() => {
                    return Err(format!(
                        "operator {} on '{}' needs at least one value",
                        r.operator, r.key
                    ))
                }
                "Exists" | "DoesNotExist" if !r.values.is_empty() => {
                    return Err(format!(
                        "operator {} on '{}' takes no values",
                        r.operator, r.key
                    ))
                }
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => {
                    return Err(format!(
                        "unknown selector operator '{other}' on '{}'",
                        r.key
                    ))
                }
            }
        }
        Ok(())
    }

    /// Whether `labels` satisfy the selector. Unknown operators match nothing
    /// (a pool with one is Invalid anyway).
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let value = labels.get(&r.key);
                match r.operator.as_str() {
                    "In" => value.is_some_and(|v| r.values.contains(v)),
                    "NotIn" => value.is_none_or(|v| !r.values.contains(v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, operator: &str, values: &[&str]) -> LabelSelector {
        LabelSelector {
            match_labels: Labels::new(),
            match_expressions: vec![SelectorRequirement {
                key: key.into(),
                operator: operator.into(),
                values: values.iter().map(|v| v.to_string()).collect(),
            }],
        }
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert!(LabelSelector::default().matches(&Labels::new()));
    }

    #[test]
    fn match_labels_need_every_pair() {
        let s = LabelSelector::labels([("tier", "web"), ("env", "prod")]);
        assert!(s.matches(&labels(&[("tier", "web"), ("env", "prod"), ("x", "y")])));
        assert!(!s.matches(&labels(&[("tier", "web")])));
    }

    #[test]
    fn expressions_follow_kubernetes_semantics() {
        let web = labels(&[("tier", "web")]);
        let none = Labels::new();
        assert!(expr("tier", "In", &["web", "api"]).matches(&web));
        assert!(!expr("tier", "In", &["api"]).matches(&web));
        assert!(!expr("tier", "In", &["web"]).matches(&none));
        assert!(expr("tier", "NotIn", &["api"]).matches(&web));
        assert!(expr("tier", "NotIn", &["api"]).matches(&none));
        assert!(expr("tier", "Exists", &[]).matches(&web));
        assert!(expr("tier", "DoesNotExist", &[]).matches(&none));
        assert!(!expr("tier", "DoesNotExist", &[]).matches(&web));
    }

    #[test]
    fn bad_operators_are_reported() {
        assert!(expr("tier", "Has", &[])
            .validate()
            .unwrap_err()
            .contains("unknown selector operator 'Has'"));
        assert!(expr("tier", "In", &[]).validate().is_err());
        assert!(expr("tier", "Exists", &["x"]).validate().is_err());
        assert!(expr("tier", "In", &["x"]).validate().is_ok());
    }
}
