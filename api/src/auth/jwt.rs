//! Access tokens: HS256 JWTs signed by the newest key of a persisted keyring, verified by any
//! key it lists (so keys can rotate without logging everyone out). The header's `kid` picks
//! the key; an unknown `kid`, another algorithm (including `none`), a bad signature or an
//! expired token are all the same 401.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::state::{KeyValue, StoreError};

const KEYRING_KEY: &[u8] = b"jwt_keyring";

/// What an access token says. `tenant` is a tenant id or `root`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub tenant: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
}

#[derive(Clone, Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    /// 32 random bytes, base64url.
    secret: String,
    created_at: i64,
}

struct Key {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// Why a token was refused. Callers answer every variant with the same 401; the variants
/// exist for tests and logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed or uses another algorithm")]
    Malformed,
    #[error("the token names no known key")]
    UnknownKey,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the token expired")]
    Expired,
}

/// The signing keys, newest first.
pub struct Keyring {
    keys: Vec<Key>,
}

impl Keyring {
    /// Loads the keyring from `store`, creating (and durably storing) a first key if there is
    /// none.
    pub fn open(store: &Arc<dyn KeyValue>, now: i64) -> Result<Keyring, StoreError> {
        let stored: Vec<StoredKey> = match store.get(KEYRING_KEY)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| StoreError(format!("decoding the JWT keyring: {e}")))?,
            None => Vec::new(),
        };
        if !stored.is_empty() {
            return Keyring::from_stored(&stored);
        }
        let first = vec![new_key(now)];
        let bytes = serde_json::to_vec(&first).expect("keys serialize");
        store.put(KEYRING_KEY, &bytes)?;
        store.flush()?;
        Keyring::from_stored(&first)
    }

    fn from_stored(stored: &[StoredKey]) -> Result<Keyring, StoreError> {
        let mut stored = stored.to_vec();
        stored.sort_by_key(|k| std::cmp::Reverse(k.created_at));
        let keys = stored
            .iter()
            .map(|k| {
                let secret = URL_SAFE_NO_PAD
                    .decode(&k.secret)
                    .map_err(|e| StoreError(format!("JWT key {}: {e}", k.kid)))?;
                Ok(Key {
                    kid: k.kid.clone(),
                    encoding: EncodingKey::from_secret(&secret),
                    decoding: DecodingKey::from_secret(&secret),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Keyring { keys })
    }

    /// Signs `claims` with the newest key.
    pub fn sign(&self, claims: &Claims) -> String {
        let key = &self.keys[0];
        let header = Header {
            kid: Some(key.kid.clone()),
            ..Header::new(Algorithm::HS256)
        };
        jsonwebtoken::encode(&header, claims, &key.encoding).expect("HS256 signing cannot fail")
    }

    /// Verifies a token's key, algorithm, signature and expiry against `now` (Unix seconds,
    /// from the injected clock rather than the library's own).
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::HS256 {
            return Err(TokenError::Malformed);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(TokenError::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked below against the injected clock.
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
                _ => TokenError::Malformed,
            },
        )?;
        if data.claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(data.claims)
    }
}

fn new_key(now: i64) -> StoredKey {
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let mut kid = [0u8; 6];
    rand::rngs::OsRng.fill_bytes(&mut kid);
    StoredKey {
        kid: URL_SAFE_NO_PAD.encode(kid),
        secret: URL_SAFE_NO_PAD.encode(secret),
        created_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::MemoryStore;

    const NOW: i64 = 1_750_000_000;

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "adm_01HF7YAT00000000000000001A".into(),
            tenant: "root".into(),
            exp,
            iat: NOW,
            jti: "j1".into(),
        }
    }

    fn keyring() -> (Arc<dyn KeyValue>, Keyring) {
        let store: Arc<dyn KeyValue> = Arc::new(MemoryStore::default());
        let ring = Keyring::open(&store, NOW).unwrap();
        (store, ring)
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let (_, ring) = keyring();
        let token = ring.sign(&claims(NOW + 60));
        assert_eq!(ring.verify(&token, NOW), Ok(claims(NOW + 60)));
        assert_eq!(ring.verify(&token, NOW + 60), Err(TokenError::Expired));
    }

    #[test]
    fn the_keyring_survives_a_reopen() {
        let (store, ring) = keyring();
        let token = ring.sign(&claims(NOW + 60));
        let reopened = Keyring::open(&store, NOW + 5).unwrap();
        assert!(reopened.verify(&token, NOW).is_ok());
    }

    #[test]
    fn a_tampered_payload_fails() {
        let (_, ring) = keyring();
        let token = ring.sign(&claims(NOW + 60));
        let parts: Vec<&str> = token.split('.').collect();
        let mut forged = claims(NOW + 60);
        forged.tenant = "ten_01HF7YAT00000000000000001A".into();
        let payload = b64(&serde_json::to_vec(&forged).unwrap());
        let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert_eq!(ring.verify(&tampered, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn another_keyrings_token_fails() {
        let (_, ring) = keyring();
        let (_, other) = keyring();
        let token = other.sign(&claims(NOW + 60));
        // Different random kids: the key is unknown here.
        assert_eq!(ring.verify(&token, NOW), Err(TokenError::UnknownKey));
    }

    #[test]
    fn a_known_kid_with_the_wrong_key_fails() {
        let (_, ring) = keyring();
        let kid = ring.keys[0].kid.clone();
        let header = Header {
            kid: Some(kid),
            ..Header::new(Algorithm::HS256)
        };
        let wrong = EncodingKey::from_secret(&[7u8; 32]);
        let token = jsonwebtoken::encode(&header, &claims(NOW + 60), &wrong).unwrap();
        assert_eq!(ring.verify(&token, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn alg_none_and_other_algorithms_fail() {
        let (_, ring) = keyring();
        let kid = ring.keys[0].kid.clone();
        let payload = b64(&serde_json::to_vec(&claims(NOW + 60)).unwrap());
        for alg in ["none", "None", "HS512", "RS256"] {
            let header = b64(format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"{kid}"}}"#).as_bytes());
            for signature in ["", "c2ln"] {
                let token = format!("{header}.{payload}.{signature}");
                assert!(ring.verify(&token, NOW).is_err(), "{alg} {signature:?}");
            }
        }
        // HS384 signed with the right secret is still refused: one algorithm only.
        let header = Header {
            kid: Some(kid),
            ..Header::new(Algorithm::HS384)
        };
        let token =
            jsonwebtoken::encode(&header, &claims(NOW + 60), &ring.keys[0].encoding).unwrap();
        assert_eq!(ring.verify(&token, NOW), Err(TokenError::Malformed));
    }

    #[test]
    fn a_missing_or_unknown_kid_fails() {
        let (_, ring) = keyring();
        let key = &ring.keys[0].encoding;
        let no_kid =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(NOW + 60), key).unwrap();
        assert_eq!(ring.verify(&no_kid, NOW), Err(TokenError::UnknownKey));
        let header = Header {
            kid: Some("nope".into()),
            ..Header::new(Algorithm::HS256)
        };
        let wrong_kid = jsonwebtoken::encode(&header, &claims(NOW + 60), key).unwrap();
        assert_eq!(ring.verify(&wrong_kid, NOW), Err(TokenError::UnknownKey));
        assert_eq!(ring.verify("not.a.jwt", NOW), Err(TokenError::Malformed));
        assert_eq!(ring.verify("", NOW), Err(TokenError::Malformed));
    }
}
