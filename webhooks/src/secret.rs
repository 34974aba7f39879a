//! Signing secrets and their store.
//!
//! A secret is `whsec_` + base64 of random bytes, as in Standard Webhooks. The log never holds
//! it: events name a secret by its fingerprint (hex of the first 16 bytes of SHA-256 over the
//! key bytes), and the secret itself lives in this crate's own sled tree, keyed by that
//! fingerprint. The store is written and flushed *before* the command that names the secret
//! is executed, so every fingerprint in the log has its secret on disk; an orphan secret
//! (command refused) costs a few bytes and nothing else.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use eventlog::DbSync;

use crate::error::WebhookError;

/// The Standard Webhooks prefix of a secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a generated secret (the spec asks for 24 to 64).
pub const SECRET_BYTES: usize = 32;
/// The smallest key a secret may carry.
pub const MIN_SECRET_BYTES: usize = 24;

/// A signing secret. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    text: String,
    key: Vec<u8>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({})", self.fingerprint())
    }
}

impl Secret {
    /// A fresh secret from the operating system's random source.
    pub fn generate() -> Secret {
        let mut key = vec![0u8; SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Secret {
            text: format!("{SECRET_PREFIX}{}", STANDARD.encode(&key)),
            key,
        }
    }

    /// Parses `whsec_<base64>` with at least [`MIN_SECRET_BYTES`] of key.
    pub fn parse(text: &str) -> Result<Secret, WebhookError> {
        let bad = || WebhookError::BadSecret;
        let key = STANDARD
            .decode(text.strip_prefix(SECRET_PREFIX).ok_or_else(bad)?)
            .map_err(|_| bad())?;
        if key.len() < MIN_SECRET_BYTES {
            return Err(bad());
        }
        Ok(Secret {
            text: text.to_owned(),
            key,
        })
    }

    /// The `whsec_…` form, shown to the user once.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// The HMAC key (the base64-decoded part after `whsec_`).
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// What events carry instead of the secret: 32 lowercase hex digits.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(&self.key);
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Secrets by fingerprint, in the `webhooks/secrets` tree of the log's database.
#[derive(Clone)]
pub struct SecretStore {
    tree: sled::Tree,
    sync: DbSync,
}

impl SecretStore {
    pub fn open(sync: &DbSync) -> Result<SecretStore, WebhookError> {
        Ok(SecretStore {
            tree: sync.db().open_tree("webhooks/secrets")?,
            sync: sync.clone(),
        })
    }

    /// Stores `secret` durably (synced to disk: an append makes only the log durable) and
    /// returns its fingerprint, to be put in the create or rotate command.
    pub async fn put(&self, secret: &Secret) -> Result<String, WebhookError> {
        let fingerprint = secret.fingerprint();
        self.tree
            .insert(fingerprint.as_bytes(), secret.expose().as_bytes())?;
        let sync = self.sync.clone();
        tokio::task::spawn_blocking(move || sync.sync())
            .await
            .map_err(|e| WebhookError::Task(e.to_string()))??;
        Ok(fingerprint)
    }

    pub fn get(&self, fingerprint: &str) -> Result<Option<Secret>, WebhookError> {
        match self.tree.get(fingerprint.as_bytes())? {
            None => Ok(None),
            Some(bytes) => {
                let text = std::str::from_utf8(&bytes).map_err(|_| WebhookError::BadSecret)?;
                Secret::parse(text).map(Some)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_parse_back_and_fingerprints_differ() {
        let a = Secret::generate();
        let b = Secret::generate();
        assert!(a.expose().starts_with("whsec_"));
        assert_eq!(Secret::parse(a.expose()).unwrap(), a);
        assert_eq!(a.key().len(), SECRET_BYTES);
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint().len(), 32);
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn rejects_short_unprefixed_or_non_base64_secrets() {
        let short = format!("whsec_{}", STANDARD.encode([7u8; 23]));
        for bad in ["", "whsec_", "c2VjcmV0", "whsec_!!!!", short.as_str()] {
            assert!(Secret::parse(bad).is_err(), "{bad}");
        }
        let ok = format!("whsec_{}", STANDARD.encode([7u8; 24]));
        assert!(Secret::parse(&ok).is_ok());
    }
}
