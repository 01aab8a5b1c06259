//! Who a verified token speaks for.

use std::collections::BTreeSet;

use serde::Deserialize;

/// The caller a verified access token stands for.
///
/// Identity is the pair (`issuer`, `subject`): a `sub` is unique only within its issuer, so
/// storing it alone would let a second trusted issuer impersonate the first one's users.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    /// The token's `iss`.
    pub issuer: String,
    /// The token's `sub`: the user, or the client for client-credentials tokens.
    pub subject: String,
    /// What the token grants: the `scope` claim (RFC 9068/8693, space separated) together with
    /// `scp` (string or array), which Entra ID and Okta send instead.
    pub scopes: BTreeSet<String>,
}

impl Principal {
    /// Whether the token was granted `scope` (exact, case-sensitive match).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }
}

/// The claims this crate reads. Everything is optional here so that a missing `iss`/`sub`/
/// `exp`/`aud` is reported by jsonwebtoken's required-claims check, by name, rather than as a
/// parse failure.
#[derive(Debug, Deserialize)]
pub(crate) struct AccessClaims {
    #[serde(default)]
    pub(crate) iss: Option<String>,
    #[serde(default)]
    pub(crate) sub: Option<String>,
    /// Required and checked by the verification; kept to know how long it may be cached
    /// (a whole number of seconds; a fractional `exp` is not cached).
    #[serde(default)]
    pub(crate) exp: Option<serde_json::Number>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    scp: Option<ScopeClaim>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ScopeClaim {
    SpaceSeparated(String),
    List(Vec<String>),
}

impl AccessClaims {
    pub(crate) fn scopes(&self) -> BTreeSet<String> {
        let from_scope = self.scope.iter().flat_map(|s| s.split_ascii_whitespace());
        let from_scp: Vec<&str> = match &self.scp {
            None => Vec::new(),
            Some(ScopeClaim::SpaceSeparated(s)) => s.split_ascii_whitespace().collect(),
            Some(ScopeClaim::List(list)) => list
                .iter()
                .flat_map(|s| s.split_ascii_whitespace())
                .collect(),
        };
        from_scope.chain(from_scp).map(str::to_owned).collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn scopes_of(claims: serde_json::Value) -> Vec<String> {
        let claims: AccessClaims = serde_json::from_value(claims).expect("claims parse");
        claims.scopes().into_iter().collect()
    }

    #[test]
    fn the_scope_claim_is_split_on_spaces() {
        assert_eq!(
            scopes_of(json!({"scope": "wallets:read  wallets:deposit"})),
            ["wallets:deposit", "wallets:read"]
        );
    }

    #[test]
    fn scp_is_accepted_as_a_string_or_an_array_and_merged_with_scope() {
        assert_eq!(
            scopes_of(json!({"scope": "a", "scp": ["b", "c"]})),
            ["a", "b", "c"]
        );
        assert_eq!(scopes_of(json!({"scp": "b c"})), ["b", "c"]);
    }

    #[test]
    fn a_token_without_scope_claims_grants_nothing() {
        assert!(scopes_of(json!({"sub": "alice"})).is_empty());
    }

    #[test]
    fn has_scope_matches_whole_scope_names_only() {
        let principal = Principal {
            issuer: "https://idp".into(),
            subject: "alice".into(),
            scopes: ["wallets:admin".to_owned()].into(),
        };
        assert!(principal.has_scope("wallets:admin"));
        assert!(!principal.has_scope("wallets"));
        assert!(!principal.has_scope("Wallets:Admin"));
    }
}
