//! Standard Webhooks signatures: `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`,
//! one per signing secret, separated by spaces.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

/// One `v1,…` signature.
pub fn sign(secret: &Secret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    Signer::new(secret).sign(msg_id, timestamp, body)
}

/// The `webhook-signature` header value: a signature per secret, space-separated, so a
/// receiver that knows either the old or the new secret during a rotation can verify.
pub fn signature_header(secrets: &[Secret], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let signers: Vec<Signer> = secrets.iter().map(Signer::new).collect();
    header_of(signers.iter(), msg_id, timestamp, body)
}

/// The header from `signers`, in order.
pub(crate) fn header_of<'a>(
    signers: impl Iterator<Item = &'a Signer>,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let mut header = String::new();
    for signer in signers {
        if !header.is_empty() {
            header.push(' ');
        }
        header.push_str(&signer.sign(msg_id, timestamp, body));
    }
    header
}

/// HMAC-SHA256 keyed with one secret. Keying hashes the padded key, so every delivery to an
/// endpoint starts from a copy of this state instead of keying again.
#[derive(Clone)]
pub(crate) struct Signer {
    keyed: Hmac<Sha256>,
}

impl Signer {
    pub(crate) fn new(secret: &Secret) -> Signer {
        Signer {
            keyed: Hmac::<Sha256>::new_from_slice(secret.key())
                .expect("HMAC accepts keys of any length"),
        }
    }

    pub(crate) fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = self.keyed.clone();
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        let mut signature = String::with_capacity(47);
        signature.push_str("v1,");
        STANDARD.encode_string(mac.finalize().into_bytes(), &mut signature);
        signature
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification.
    #[test]
    fn matches_the_specification_example() {
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let other = Secret::generate();
        let header = signature_header(&[secret.clone(), other.clone()], "m", 1, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(
            parts,
            [sign(&secret, "m", 1, b"{}"), sign(&other, "m", 1, b"{}")]
        );
    }
}
