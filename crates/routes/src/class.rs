//! Which Ingresses are ours: `spec.ingressClassName` naming an IngressClass with our
//! controller, the legacy `kubernetes.io/ingress.class` annotation, or no class at all
//! when one of our IngressClasses is the default.

/// The IngressClass `spec.controller` IronLB answers for.
pub const CONTROLLER: &str = "ironlb.io/ingress-gateway";

/// The legacy Ingress annotation naming a class.
pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// The IngressClass annotation that marks the cluster default.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// An IngressClass, reduced to what selection needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressClassInput {
    /// `metadata.name`.
    pub name: String,
    /// `spec.controller`.
    pub controller: String,
    /// `ingressclass.kubernetes.io/is-default-class` is `"true"`.
    pub is_default: bool,
}

impl IngressClassInput {
    /// One of our classes.
    pub fn ours(name: &str) -> Self {
        Self {
            name: name.to_string(),
            controller: CONTROLLER.to_string(),
            is_default: false,
        }
    }

    /// A class of another controller.
    pub fn foreign(name: &str, controller: &str) -> Self {
        Self {
            name: name.to_string(),
            controller: controller.to_string(),
            is_default: false,
        }
    }

    /// Marks the class as the cluster default.
    pub fn default_class(mut self) -> Self {
        self.is_default = true;
        self
    }

    fn is_ours(&self) -> bool {
        self.controller == CONTROLLER
    }
}

/// Whether an Ingress belongs to IronLB. `class_name` is `spec.ingressClassName`,
/// `legacy_annotation` the value of [`LEGACY_CLASS_ANNOTATION`]; empty strings count as
/// unset. The field wins over the annotation; with neither, the Ingress is ours when
/// one of our classes is marked default.
pub fn is_ours(
    class_name: Option<&str>,
    legacy_annotation: Option<&str>,
    classes: &[IngressClassInput],
) -> bool {
    let named = class_name
        .filter(|s| !s.is_empty())
        .or(legacy_annotation.filter(|s| !s.is_empty()));
    match named {
        Some(name) => classes.iter().any(|c| c.name == name && c.is_ours()),
        None => classes.iter().any(|c| c.is_default && c.is_ours()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes() -> Vec<IngressClassInput> {
        vec![
            IngressClassInput::ours("ironlb"),
            IngressClassInput::foreign("nginx", "k8s.io/ingress-nginx"),
        ]
    }

    #[test]
    fn class_name_selects_by_controller() {
        assert!(is_ours(Some("ironlb"), None, &classes()));
        assert!(!is_ours(Some("nginx"), None, &classes()));
        assert!(!is_ours(Some("missing"), None, &classes()));
    }

    #[test]
    fn legacy_annotation_is_honoured_and_the_field_wins() {
        assert!(is_ours(None, Some("ironlb"), &classes()));
        assert!(!is_ours(None, Some("nginx"), &classes()));
        assert!(!is_ours(Some("nginx"), Some("ironlb"), &classes()));
        assert!(is_ours(Some(""), Some("ironlb"), &classes()));
    }

    #[test]
    fn classless_ingresses_are_ours_only_when_our_class_is_default() {
        assert!(!is_ours(None, None, &classes()));
        let mut with_default = classes();
        with_default[0] = IngressClassInput::ours("ironlb").default_class();
        assert!(is_ours(None, None, &with_default));
        let foreign_default = vec![
            IngressClassInput::ours("ironlb"),
            IngressClassInput::foreign("nginx", "k8s.io/ingress-nginx").default_class(),
        ];
        assert!(!is_ours(None, Some(""), &foreign_default));
    }
}
