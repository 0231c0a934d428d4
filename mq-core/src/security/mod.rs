//! Authentication and authorization (DESIGN.md section 8): principals are app keys
//! with secrets, proved by a challenge-response that never puts the secret on the
//! wire; ACLs grant produce, consume and admin per topic and group.
//!
//! The exchange follows SCRAM (RFC 5802, with SHA-256 as in RFC 7677) in shape:
//!
//! ```text
//! salted      = HMAC(secret, salt)                 (client side only)
//! client_key  = HMAC(salted, "Client Key")         (client side only)
//! stored_key  = SHA256(client_key)                 (what the cluster stores, with salt)
//! auth_msg    = app_key | server_nonce | client_nonce
//! signature   = HMAC(stored_key, auth_msg)
//! proof       = client_key XOR signature           (what the client sends)
//! ```
//!
//! The server recovers `client_key = proof XOR signature` and checks that its hash
//! is `stored_key`. A stolen `stored_key` does not let anyone log in (it cannot
//! produce `client_key`), a captured proof is useless on another connection (the
//! server nonce differs), and the secret itself is never sent nor stored. Brokers
//! authenticate to each other the same way with the cluster secret. Iterated
//! key stretching (PBKDF2) is left out: app secrets are generated keys, not
//! passwords.

pub mod acl;
pub mod peer;
pub mod session;

use crate::wire::{ErrorCode, WireError};
use acl::{Grant, Resource};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Bytes of every key, nonce and proof.
pub const KEY_BYTES: usize = 32;

/// The longest app key.
pub const MAX_APP_KEY_LEN: usize = 128;

/// App keys are 1 to [`MAX_APP_KEY_LEN`] characters of `A-Z a-z 0-9 . _ -`.
pub fn validate_app_key(app_key: &str) -> Result<(), WireError> {
    let ok = !app_key.is_empty()
        && app_key.len() <= MAX_APP_KEY_LEN
        && app_key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(WireError::new(
            ErrorCode::InvalidRequest,
            format!("app key {app_key:?} must be 1 to {MAX_APP_KEY_LEN} characters of A-Z a-z 0-9 . _ -"),
        ))
    }
}

/// A grant names a valid app key and a resource that is a name or a `prefix*`
/// of the characters topic and group names use.
pub fn validate_grant(g: &Grant) -> Result<(), WireError> {
    validate_app_key(&g.principal)?;
    let pattern = match &g.resource {
        Resource::Cluster => return Ok(()),
        Resource::Topic(p) | Resource::Group(p) => p,
    };
    let name = pattern.strip_suffix('*').unwrap_or(pattern);
    let ok = name.len() <= 249
        && (!name.is_empty() || pattern == "*")
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(WireError::new(
            ErrorCode::InvalidRequest,
            format!("resource pattern {pattern:?} must be a name or a prefix followed by '*'"),
        ))
    }
}

/// What the cluster stores for a principal: never the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCredential {
    /// Random per principal.
    pub salt: [u8; 16],
    /// `SHA256(client_key)`.
    pub stored_key: [u8; KEY_BYTES],
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; KEY_BYTES] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

fn client_key(secret: &[u8], salt: &[u8; 16]) -> [u8; KEY_BYTES] {
    let salted = hmac(secret, &[salt]);
    hmac(&salted, &[b"Client Key"])
}

fn auth_message_signature(
    stored_key: &[u8; KEY_BYTES],
    app_key: &str,
    server_nonce: &[u8; KEY_BYTES],
    client_nonce: &[u8; KEY_BYTES],
) -> [u8; KEY_BYTES] {
    let len = (app_key.len() as u32).to_be_bytes();
    hmac(stored_key, &[&len, app_key.as_bytes(), server_nonce, client_nonce])
}

impl StoredCredential {
    /// The credential for `secret` with `salt` (the salt comes from a seeded
    /// stream in the core, from the OS in tools).
    pub fn new(secret: &[u8], salt: [u8; 16]) -> Self {
        let stored_key = Sha256::digest(client_key(secret, &salt)).into();
        StoredCredential { salt, stored_key }
    }

    /// Checks a client's proof for this exchange, in constant time.
    pub fn verify(
        &self,
        app_key: &str,
        server_nonce: &[u8; KEY_BYTES],
        client_nonce: &[u8; KEY_BYTES],
        proof: &[u8; KEY_BYTES],
    ) -> bool {
        let signature = auth_message_signature(&self.stored_key, app_key, server_nonce, client_nonce);
        let mut key = [0u8; KEY_BYTES];
        for i in 0..KEY_BYTES {
            key[i] = proof[i] ^ signature[i];
        }
        let hashed: [u8; KEY_BYTES] = Sha256::digest(key).into();
        // Constant-time comparison: fold every byte difference.
        hashed.iter().zip(self.stored_key.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// The client's side: the proof for a server's challenge.
pub fn client_proof(
    secret: &[u8],
    salt: &[u8; 16],
    app_key: &str,
    server_nonce: &[u8; KEY_BYTES],
    client_nonce: &[u8; KEY_BYTES],
) -> [u8; KEY_BYTES] {
    let key = client_key(secret, salt);
    let stored_key: [u8; KEY_BYTES] = Sha256::digest(key).into();
    let signature = auth_message_signature(&stored_key, app_key, server_nonce, client_nonce);
    let mut proof = [0u8; KEY_BYTES];
    for i in 0..KEY_BYTES {
        proof[i] = key[i] ^ signature[i];
    }
    proof
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALT: [u8; 16] = [7; 16];
    const SN: [u8; KEY_BYTES] = [1; KEY_BYTES];
    const CN: [u8; KEY_BYTES] = [2; KEY_BYTES];

    #[test]
    fn the_right_secret_proves_itself() {
        let cred = StoredCredential::new(b"s3cret", SALT);
        let proof = client_proof(b"s3cret", &SALT, "app", &SN, &CN);
        assert!(cred.verify("app", &SN, &CN, &proof));
    }

    #[test]
    fn a_wrong_secret_another_key_or_a_replayed_proof_fails() {
        let cred = StoredCredential::new(b"s3cret", SALT);
        let proof = client_proof(b"guess", &SALT, "app", &SN, &CN);
        assert!(!cred.verify("app", &SN, &CN, &proof));
        let proof = client_proof(b"s3cret", &SALT, "app", &SN, &CN);
        assert!(!cred.verify("other-app", &SN, &CN, &proof), "bound to the app key");
        let fresh_nonce = [9; KEY_BYTES];
        assert!(!cred.verify("app", &fresh_nonce, &CN, &proof), "a captured proof is useless on a new challenge");
    }

    #[test]
    fn the_stored_credential_is_not_the_secret_and_cannot_log_in() {
        let cred = StoredCredential::new(b"s3cret", SALT);
        assert_ne!(&cred.stored_key[..6], b"s3cret");
        // Someone who stole `stored_key` tries it as if it were the client key.
        let signature = auth_message_signature(&cred.stored_key, "app", &SN, &CN);
        let mut forged = [0u8; KEY_BYTES];
        for i in 0..KEY_BYTES {
            forged[i] = cred.stored_key[i] ^ signature[i];
        }
        assert!(!cred.verify("app", &SN, &CN, &forged));
    }

    #[test]
    fn the_same_secret_with_another_salt_stores_differently() {
        assert_ne!(StoredCredential::new(b"x", [1; 16]).stored_key, StoredCredential::new(b"x", [2; 16]).stored_key);
    }
}
