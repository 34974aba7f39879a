//! Refresh tokens: opaque `rt_<family>_<secret>` strings, stored only as SHA-256 hashes, one
//! record per family (one login). Using a token spends it and issues the next one of its
//! family; presenting a spent token again means it was stolen or replayed, so the whole
//! family is revoked. Logout revokes the family.

use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::state::{KeyValue, StoreError};

/// How many spent hashes a family remembers for reuse detection; older reuse is simply an
/// unknown token (still a 401, without revoking).
const SPENT_KEPT: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Family {
    /// `adm_…` the tokens belong to.
    admin: String,
    /// `root` or the tenant id the session was opened in.
    tenant: String,
    /// Fingerprint of the password the session was opened with (see
    /// [`crate::auth::credential_marker`]); absent in records older than it, which then no
    /// longer refresh.
    #[serde(default)]
    credential: String,
    current: String,
    spent: Vec<String>,
    revoked: bool,
    expires_at: i64,
}

/// A refresh token's owner, returned when it is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub admin: String,
    pub tenant: String,
    /// Fingerprint of the admin's password hash at login; a session outlives no password
    /// change.
    pub credential: String,
}

/// Why a refresh token was refused (all are 401 to the client).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    #[error("not a refresh token")]
    Malformed,
    #[error("unknown refresh token")]
    Unknown,
    #[error("the session expired or was revoked")]
    Revoked,
    #[error("a spent refresh token was presented again; the session is revoked")]
    Reused,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct RefreshTokens {
    store: Arc<dyn KeyValue>,
    /// Serialises read-modify-write of families: two concurrent uses of one token must not
    /// both succeed.
    lock: Mutex<()>,
}

impl RefreshTokens {
    pub fn new(store: Arc<dyn KeyValue>) -> RefreshTokens {
        RefreshTokens {
            store,
            lock: Mutex::new(()),
        }
    }

    /// Opens a new family for a login; returns its first token.
    pub fn issue(&self, session: Session, now: i64, ttl_secs: i64) -> Result<String, StoreError> {
        let family = random_b64::<16>();
        let secret = random_b64::<32>();
        let record = Family {
            admin: session.admin,
            tenant: session.tenant,
            credential: session.credential,
            current: digest(&secret),
            spent: Vec::new(),
            revoked: false,
            expires_at: now + ttl_secs,
        };
        let _guard = self.lock.lock().expect("refresh lock poisoned");
        self.save(&family, &record)?;
        Ok(format!("rt_{family}_{secret}"))
    }

    /// Spends `token` and returns the next one of its family with the session it belongs to.
    /// The session's lifetime restarts from `now` (a sliding window).
    pub fn rotate(
        &self,
        token: &str,
        now: i64,
        ttl_secs: i64,
    ) -> Result<(String, Session), RefreshError> {
        let (family, secret) = parse(token)?;
        let _guard = self.lock.lock().expect("refresh lock poisoned");
        let mut record = self.load(family)?.ok_or(RefreshError::Unknown)?;
        if record.revoked || record.expires_at <= now {
            return Err(RefreshError::Revoked);
        }
        let presented = digest(secret);
        if presented != record.current {
            if record.spent.contains(&presented) {
                record.revoked = true;
                self.save(family, &record)?;
                return Err(RefreshError::Reused);
            }
            return Err(RefreshError::Unknown);
        }
        let next = random_b64::<32>();
        record
            .spent
            .push(std::mem::replace(&mut record.current, digest(&next)));
        if record.spent.len() > SPENT_KEPT {
            record.spent.remove(0);
        }
        record.expires_at = now + ttl_secs;
        self.save(family, &record)?;
        let session = Session {
            admin: record.admin,
            tenant: record.tenant,
            credential: record.credential,
        };
        Ok((format!("rt_{family}_{next}"), session))
    }

    /// Revokes the family of `token` if it belongs to `admin`; `Ok(false)` if there was
    /// nothing of theirs to revoke.
    pub fn revoke(&self, token: &str, admin: &str) -> Result<bool, RefreshError> {
        let (family, _) = parse(token)?;
        let _guard = self.lock.lock().expect("refresh lock poisoned");
        match self.load(family)? {
            Some(mut record) if record.admin == admin => {
                record.revoked = true;
                self.save(family, &record)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn load(&self, family: &str) -> Result<Option<Family>, StoreError> {
        self.store
            .get(family.as_bytes())?
            .map(|bytes| {
                serde_json::from_slice(&bytes)
                    .map_err(|e| StoreError(format!("refresh family {family}: {e}")))
            })
            .transpose()
    }

    fn save(&self, family: &str, record: &Family) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(record).expect("families serialize");
        self.store.put(family.as_bytes(), &bytes)
    }
}

fn parse(token: &str) -> Result<(&str, &str), RefreshError> {
    // base64url of 16 and 32 bytes, unpadded: fixed lengths, since `_` may occur inside both.
    let rest = token.strip_prefix("rt_").ok_or(RefreshError::Malformed)?;
    let url_safe = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if rest.len() != 22 + 1 + 43 || rest.as_bytes()[22] != b'_' || !rest.bytes().all(url_safe) {
        return Err(RefreshError::Malformed);
    }
    Ok((&rest[..22], &rest[23..]))
}

fn digest(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

fn random_b64<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::MemoryStore;

    fn tokens() -> RefreshTokens {
        RefreshTokens::new(Arc::new(MemoryStore::default()))
    }

    fn session() -> Session {
        Session {
            admin: "adm_x".into(),
            tenant: "root".into(),
            credential: "c".into(),
        }
    }

    #[test]
    fn rotation_spends_the_old_token_and_reuse_revokes_the_family() {
        let t = tokens();
        let first = t.issue(session(), 100, 60).unwrap();
        assert!(parse(&first).is_ok());
        let (second, s) = t.rotate(&first, 110, 60).unwrap();
        assert_eq!(s, session());
        let (third, _) = t.rotate(&second, 120, 60).unwrap();
        assert_eq!(t.rotate(&first, 121, 60), Err(RefreshError::Reused));
        // The whole family is gone, including the newest token.
        assert_eq!(t.rotate(&third, 122, 60), Err(RefreshError::Revoked));
    }

    #[test]
    fn expiry_logout_and_garbage() {
        let t = tokens();
        let token = t.issue(session(), 100, 60).unwrap();
        assert_eq!(t.rotate(&token, 160, 60), Err(RefreshError::Revoked));
        let token = t.issue(session(), 100, 60).unwrap();
        assert_eq!(t.revoke(&token, "adm_other"), Ok(false));
        assert_eq!(t.revoke(&token, "adm_x"), Ok(true));
        assert_eq!(t.rotate(&token, 101, 60), Err(RefreshError::Revoked));
        assert_eq!(t.rotate("rt_nope", 101, 60), Err(RefreshError::Malformed));
        let unknown = tokens().issue(session(), 100, 60).unwrap();
        assert_eq!(t.rotate(&unknown, 101, 60), Err(RefreshError::Unknown));
    }
}
