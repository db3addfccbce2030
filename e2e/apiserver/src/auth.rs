//! Bearer-token authentication: a token maps to a user name.

use std::collections::HashMap;
use std::sync::RwLock;

use rand::Rng;

/// Known tokens.
#[derive(Debug, Default)]
pub struct Tokens {
    by_token: RwLock<HashMap<String, String>>,
}

impl Tokens {
    /// Register a token for a user.
    pub fn insert(&self, token: &str, user: &str) {
        self.by_token
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.to_string(), user.to_string());
    }

    /// A fresh random token for `user`.
    pub fn issue(&self, user: &str) -> String {
        let mut rng = rand::rng();
        let token: String = (0..32)
            .map(|_| format!("{:x}", rng.random_range(0..16u8)))
            .collect();
        self.insert(&token, user);
        token
    }

    /// The user behind an `Authorization` header value, if it is a known bearer token.
    pub fn authenticate(&self, header: Option<&str>) -> Option<String> {
        let token = header?.strip_prefix("Bearer ")?.trim();
        self.by_token
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_bearer_tokens_authenticate() {
        let t = Tokens::default();
        let tok = t.issue("system:serviceaccount:ironlb:controller");
        assert_eq!(
            t.authenticate(Some(&format!("Bearer {tok}"))).as_deref(),
            Some("system:serviceaccount:ironlb:controller")
        );
        assert_eq!(t.authenticate(Some("Bearer nope")), None);
        assert_eq!(t.authenticate(Some(&format!("Basic {tok}"))), None);
        assert_eq!(t.authenticate(None), None);
    }
}
