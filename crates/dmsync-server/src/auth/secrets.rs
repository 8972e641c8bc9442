//! Client secrets and passwords are stored as salted SHA-256. dmsync is a development and CI
//! server whose seeded credentials are public; a slow password hash would only slow the tests.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

fn digest(salt: &[u8], secret: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(secret.as_bytes());
    h.finalize().to_vec()
}

pub fn hash_secret(secret: &str) -> String {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    format!("sha256${}${}", STANDARD_NO_PAD.encode(salt), STANDARD_NO_PAD.encode(digest(&salt, secret)))
}

/// Whether `secret` is the one `stored` was made from. An empty or blank secret never is: no
/// client may authenticate with nothing, even against a hash of nothing.
pub fn verify_secret(secret: &str, stored: &str) -> bool {
    if secret.trim().is_empty() {
        return false;
    }
    let mut parts = stored.split('$');
    let (Some("sha256"), Some(salt), Some(expected), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let (Ok(salt), Ok(expected)) = (STANDARD_NO_PAD.decode(salt), STANDARD_NO_PAD.decode(expected)) else {
        return false;
    };
    // Constant time: the comparison does not stop at the first difference.
    digest(&salt, secret).ct_eq(&expected).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_only_the_right_secret() {
        let stored = hash_secret("dmsync-dev-secret");
        assert!(verify_secret("dmsync-dev-secret", &stored));
        assert!(!verify_secret("dmsync-dev-secreT", &stored));
        assert!(!verify_secret("x", "garbage"));
        assert_ne!(stored, hash_secret("dmsync-dev-secret"), "salted");
    }

    #[test]
    fn an_empty_secret_never_verifies() {
        for blank in ["", " ", "\t"] {
            assert!(!verify_secret(blank, &hash_secret(blank)), "{blank:?}");
            assert!(!verify_secret(blank, &hash_secret("dmsync-dev-secret")), "{blank:?}");
        }
    }
}
