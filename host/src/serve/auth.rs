//! The API key: when set, every request but `GET /health` carries it as
//! `authorization: Bearer <key>`. Compared in constant time (both sides hashed to the same
//! length first, so not even the key's length leaks).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The header both protocols read the key from.
pub const AUTHORIZATION: &str = "authorization";

/// What a client must present, if anything.
#[derive(Clone)]
pub struct ApiKey {
    digest: Option<[u8; 32]>,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.write_str(if self.digest.is_some() {
            "ApiKey(set)"
        } else {
            "ApiKey(none)"
        })
    }
}

impl ApiKey {
    /// `None` or an empty key: every request is let in.
    pub fn new(key: Option<&str>) -> Self {
        Self {
            digest: key.filter(|k| !k.is_empty()).map(digest),
        }
    }

    pub fn is_set(&self) -> bool {
        self.digest.is_some()
    }

    /// Whether an `authorization` header value lets the request in.
    pub fn admits(&self, authorization: Option<&str>) -> bool {
        let Some(expected) = &self.digest else {
            return true;
        };
        let Some(token) = authorization.and_then(bearer_token) else {
            return false;
        };
        bool::from(digest(token).ct_eq(expected))
    }
}

/// The token of `Bearer <token>` (the scheme in any case).
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// The message a refused request gets.
pub fn unauthenticated_message() -> &'static str {
    "missing or wrong API key: send the header `authorization: Bearer <key>` with the key \
     the server was started with (--api-key or ACCEL_API_KEY)"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_bearer_token_is_admitted() {
        let key = ApiKey::new(Some("s3cret"));
        assert!(key.admits(Some("Bearer s3cret")));
        assert!(key.admits(Some("bearer s3cret")));
        assert!(!key.admits(Some("Bearer s3cre")));
        assert!(!key.admits(Some("Bearer s3cret2")));
        assert!(!key.admits(Some("Basic s3cret")));
        assert!(!key.admits(Some("s3cret")));
        assert!(!key.admits(Some("Bearer ")));
        assert!(!key.admits(None));
        assert_eq!(format!("{key:?}"), "ApiKey(set)");
    }

    #[test]
    fn no_key_admits_everyone() {
        for key in [ApiKey::new(None), ApiKey::new(Some(""))] {
            assert!(!key.is_set());
            assert!(key.admits(None));
            assert!(key.admits(Some("Bearer anything")));
        }
    }
}
