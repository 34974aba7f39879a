//! Secrets at rest: values such as SMTP passwords are sealed with ChaCha20-Poly1305 under a
//! server key before they enter a command, so the event log never holds them in clear.
//! The key lives in the server's `secrets` store, created on first use.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

use crate::state::{KeyValue, StoreError};

const SECRET_BOX_KEY: &[u8] = b"secret_box_key";
/// Marks sealed values, with a version so the scheme can change.
const PREFIX: &str = "sealed:v1:";

pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

impl SecretBox {
    /// Loads the server key from `store`, creating (and durably storing) it if missing.
    pub fn open(store: &Arc<dyn KeyValue>) -> Result<SecretBox, StoreError> {
        let key = match store.get(SECRET_BOX_KEY)? {
            Some(key) if key.len() == 32 => key,
            Some(_) => return Err(StoreError("the secret box key is not 32 bytes".into())),
            None => {
                let key = ChaCha20Poly1305::generate_key(&mut OsRng).to_vec();
                store.put(SECRET_BOX_KEY, &key)?;
                store.flush()?;
                key
            }
        };
        Ok(SecretBox {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        })
    }

    /// `sealed:v1:<base64(nonce ‖ ciphertext)>`.
    pub fn seal(&self, plaintext: &str) -> String {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(&nonce, plaintext.as_bytes())
            .expect("encryption of a short secret cannot fail");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{PREFIX}{}", STANDARD.encode(bytes))
    }

    /// The plaintext of a value made by [`SecretBox::seal`] with this server's key.
    pub fn open_sealed(&self, sealed: &str) -> Option<String> {
        let bytes = STANDARD.decode(sealed.strip_prefix(PREFIX)?).ok()?;
        if bytes.len() < 12 {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .ok()?;
        String::from_utf8(plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::MemoryStore;

    #[test]
    fn seals_and_opens_with_the_stored_key_only() {
        let store: Arc<dyn KeyValue> = Arc::new(MemoryStore::default());
        let a = SecretBox::open(&store).unwrap();
        let sealed = a.seal("hunter22");
        assert!(sealed.starts_with(PREFIX) && !sealed.contains("hunter22"));
        assert_ne!(sealed, a.seal("hunter22"));
        let reopened = SecretBox::open(&store).unwrap();
        assert_eq!(reopened.open_sealed(&sealed).as_deref(), Some("hunter22"));
        let other: Arc<dyn KeyValue> = Arc::new(MemoryStore::default());
        assert_eq!(SecretBox::open(&other).unwrap().open_sealed(&sealed), None);
    }
}
