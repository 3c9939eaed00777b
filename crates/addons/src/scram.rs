//! SCRAM-SHA-256 password verifiers computed client-side, so the plaintext password
//! never travels in SQL (PostgreSQL logs the failing statement on errors).

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

const ITERATIONS: u32 = 4096;

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; new_from_slice cannot fail for Hmac<Sha256>.
    let mut mac = HmacSha256::new_from_slice(key).expect("hmac takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// PBKDF2-HMAC-SHA256 with a 32-byte output (exactly one block).
fn pbkdf2(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut first = salt.to_vec();
    first.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac(password, &first);
    let mut out = u;
    for _ in 1..iterations {
        u = hmac(password, &u);
        for (o, b) in out.iter_mut().zip(u.iter()) {
            *o ^= b;
        }
    }
    out
}

/// The `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>` string PostgreSQL stores
/// in `pg_authid.rolpassword`. Passwords here are ASCII hex, so SASLprep is identity.
pub(crate) fn verifier(password: &str, salt: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let salted = pbkdf2(password.as_bytes(), salt, ITERATIONS);
    let client_key = hmac(&salted, b"Client Key");
    let stored_key: [u8; 32] = Sha256::digest(client_key).into();
    let server_key = hmac(&salted, b"Server Key");
    format!(
        "SCRAM-SHA-256${ITERATIONS}:{}${}:{}",
        b64.encode(salt),
        b64.encode(stored_key),
        b64.encode(server_key)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_matches_rfc7914_vector() {
        // RFC 7914 §11: PBKDF2-HMAC-SHA256 P="passwd", S="salt", c=1, first 32 bytes.
        let out = pbkdf2(b"passwd", b"salt", 1);
        assert_eq!(
            hex::encode(out),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
    }

    #[test]
    fn verifier_shape() {
        let v = verifier("secret", b"0123456789abcdef");
        assert!(v.starts_with("SCRAM-SHA-256$4096:"));
        assert!(!v.contains("secret"));
    }
}
