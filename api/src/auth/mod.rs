//! Authentication: argon2id passwords, JWT access tokens from a rotating keyring, refresh
//! token families, the per-address login limiter, and the [`Scope`] extractor every handler
//! learns its caller from.

pub mod jwt;
pub mod limiter;
pub mod password;
pub mod refresh;
mod scope;

pub use scope::Scope;
pub(crate) use scope::{bearer, scope_for_token};

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use domain::{AdminId, TenantRef};
use rand::RngCore;

use crate::state::{ApiConfig, KeyValue, StoreError};

use jwt::{Claims, Keyring};
use limiter::LoginLimiter;
use password::Passwords;
use refresh::{RefreshTokens, Session};

/// The auth machinery one server shares between its workers.
pub struct Auth {
    pub keyring: Keyring,
    pub passwords: Passwords,
    pub refresh: RefreshTokens,
    pub limiter: LoginLimiter,
    access_ttl_secs: i64,
}

/// A freshly issued token pair.
pub struct Tokens {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("argon2 parameters: {0}")]
    Argon2(argon2::Error),
}

impl Auth {
    /// `secrets` holds the signing keys; `refresh` the refresh-token families.
    pub fn open(
        secrets: &Arc<dyn KeyValue>,
        refresh: Arc<dyn KeyValue>,
        config: &ApiConfig,
        now: i64,
    ) -> Result<Auth, AuthSetupError> {
        Ok(Auth {
            keyring: Keyring::open(secrets, now)?,
            passwords: Passwords::new(config.argon2).map_err(AuthSetupError::Argon2)?,
            refresh: RefreshTokens::new(refresh),
            limiter: LoginLimiter::default(),
            access_ttl_secs: i64::try_from(config.access_token_ttl_secs).unwrap_or(i64::MAX),
        })
    }

    /// An access token for `admin` in `tenant`, valid from `now`.
    pub fn access_token(&self, admin: AdminId, tenant: TenantRef, now: i64) -> String {
        let mut jti = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut jti);
        self.keyring.sign(&Claims {
            sub: admin.to_string(),
            tenant: tenant.to_string(),
            iat: now,
            exp: now.saturating_add(self.access_ttl_secs),
            jti: URL_SAFE_NO_PAD.encode(jti),
        })
    }

    /// A new session (refresh family) and its first token pair. `password_hash` is the
    /// admin's current hash: a later password change ends the session.
    pub fn login_tokens(
        &self,
        admin: AdminId,
        tenant: TenantRef,
        password_hash: &str,
        now: i64,
        session_ttl_secs: u32,
    ) -> Result<Tokens, StoreError> {
        let refresh_token = self.refresh.issue(
            Session {
                admin: admin.to_string(),
                tenant: tenant.to_string(),
                credential: credential_marker(password_hash),
            },
            now,
            i64::from(session_ttl_secs),
        )?;
        Ok(Tokens {
            access_token: self.access_token(admin, tenant, now),
            expires_in: self.access_ttl_secs.unsigned_abs(),
            refresh_token,
        })
    }

    pub fn access_ttl_secs(&self) -> u64 {
        self.access_ttl_secs.unsigned_abs()
    }
}

/// A short fingerprint of a password hash, kept with a session instead of the hash itself.
pub fn credential_marker(password_hash: &str) -> String {
    use sha2::{Digest, Sha256};
    URL_SAFE_NO_PAD.encode(&Sha256::digest(password_hash.as_bytes())[..16])
}
