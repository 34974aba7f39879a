//! argon2id password hashing. Hashing is deliberately slow, so callers run it on a blocking
//! thread ([`Passwords::hash`] and [`Passwords::verify`] do that themselves).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::problem::ApiError;
use crate::state::Argon2Params;

/// Hashes new passwords with the configured cost; verifies any argon2 PHC string (the cost
/// is read from the hash, so hashes made with other parameters keep working).
pub struct Passwords {
    params: Params,
    /// A hash of a random password, verified against when the user does not exist, so an
    /// unknown name takes as long as a wrong password.
    dummy: String,
}

impl Passwords {
    pub fn new(p: Argon2Params) -> Result<Passwords, argon2::Error> {
        let params = Params::new(p.memory_kib, p.iterations, p.parallelism, None)?;
        let dummy =
            hash_with(&params, &random_password()).map_err(|_| argon2::Error::AlgorithmInvalid)?;
        Ok(Passwords { params, dummy })
    }

    /// The PHC string (`$argon2id$v=19$m=…`) of `password`.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        let params = self.params.clone();
        tokio::task::spawn_blocking(move || hash_with(&params, &password))
            .await
            .map_err(ApiError::internal)?
            .map_err(|e| ApiError::Internal(e.to_string().into()))
    }

    /// Whether `password` matches `hash`; `None` verifies against the dummy hash and is false.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, ApiError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy.clone());
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash).is_ok_and(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
        })
        .await
        .map_err(ApiError::internal)?;
        Ok(known && ok)
    }
}

fn hash_with(params: &Params, password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
}

/// 24 random characters from an unambiguous alphabet: the generated root password.
pub fn random_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..24)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn light() -> Passwords {
        Passwords::new(Argon2Params {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn hashes_with_argon2id_and_verifies() {
        let p = light();
        let hash = p.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{hash}");
        assert!(p
            .verify("correct horse".into(), Some(hash.clone()))
            .await
            .unwrap());
        assert!(!p.verify("wrong horse".into(), Some(hash)).await.unwrap());
        assert!(!p.verify("correct horse".into(), None).await.unwrap());
        assert!(!p
            .verify("x".into(), Some("not a hash".into()))
            .await
            .unwrap());
    }
}
