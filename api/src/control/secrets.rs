//! Secrets of the control plane: random identifiers and tokens, password hashes, token digests.
//!
//! Randomness comes from `rand::rng()` (ChaCha12 seeded from the OS, reseeded periodically), a
//! cryptographically secure generator.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::Rng;
use rand::distr::Alphanumeric;

use super::error::{ControlError, Result};

/// Length of a device auth token: 32 lowercase hex characters (128 bits), what Blynk clients send.
pub const DEVICE_TOKEN_LEN: usize = 32;

/// Random bytes of a user bearer token (256 bits, 64 hex characters).
const BEARER_TOKEN_BYTES: usize = 32;

/// Prefix of template ids, as in Blynk (`BLYNK_TEMPLATE_ID "TMPLxxxxxxxx"`).
const TEMPLATE_ID_PREFIX: &str = "TMPL";

/// A new device auth token: 128 random bits as 32 lowercase hex characters.
pub fn device_token() -> String {
    random_hex(DEVICE_TOKEN_LEN / 2)
}

/// A new bearer token for a user session or API token.
pub fn bearer_token() -> String {
    random_hex(BEARER_TOKEN_BYTES)
}

/// A new template id: `TMPL` + 8 random alphanumerics.
pub fn template_id() -> String {
    let mut id = String::with_capacity(TEMPLATE_ID_PREFIX.len() + 8);
    id.push_str(TEMPLATE_ID_PREFIX);
    id.extend(
        rand::rng()
            .sample_iter(Alphanumeric)
            .take(8)
            .map(char::from),
    );
    id
}

/// A generated password for the first admin: 24 alphanumerics (~142 bits).
pub fn generated_password() -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(buf.as_mut_slice());
    hex::encode(buf)
}

/// argon2id hash (PHC string) of a password, with the crate's default (OWASP) parameters.
/// CPU-heavy: call from a blocking task.
pub fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| ControlError::internal(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| ControlError::internal(format!("password hashing failed: {e}")))
}

/// Whether `password` matches the PHC string `hash`. CPU-heavy: call from a blocking task.
pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(e) => {
            tracing::error!(error = %e, "stored password hash is not a valid PHC string");
            false
        }
    }
}

/// A password hash that matches nothing, verified when the e-mail is unknown so that a login
/// takes the same time whether or not the account exists.
pub fn dummy_password_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&generated_password()).unwrap_or_default())
}

/// Digest stored in place of a bearer token: hex SHA-256. Bearer tokens carry 256 random bits,
/// so a fast unsalted hash is one-way in practice (no dictionary to try), costs about a
/// microsecond per request, and a leaked database does not hand out live sessions.
pub fn token_digest(token: &str) -> Result<String> {
    use sha2::{Digest, Sha256};
    Ok(hex::encode(Sha256::digest(token.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_tokens_are_32_lowercase_hex() {
        let a = device_token();
        let b = device_token();
        assert_eq!(a.len(), 32);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        );
        assert_ne!(a, b);
    }

    #[test]
    fn template_ids_look_like_blynk() {
        let id = template_id();
        assert_eq!(id.len(), 12);
        assert!(id.starts_with("TMPL"));
        assert!(id[4..].chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn passwords_hash_and_verify() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        assert!(!verify_password("x", "not a hash"));
        assert!(!verify_password("", dummy_password_hash()));
    }

    #[test]
    fn token_digest_is_deterministic_and_distinct() {
        let token = bearer_token();
        assert_eq!(token.len(), 64);
        let d1 = token_digest(&token).unwrap();
        assert_eq!(d1, token_digest(&token).unwrap());
        assert_eq!(d1.len(), 64);
        assert_ne!(d1, token_digest(&bearer_token()).unwrap());
    }
}
