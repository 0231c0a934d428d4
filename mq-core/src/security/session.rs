//! One connection's authentication (docs/security.md): the broker answers an
//! `AuthStart { app_key, client_nonce }` with the principal's salt and a fresh
//! server nonce, and an `AuthProof { proof }` with the principal's name or
//! `Unauthenticated`. A challenge is good for one proof: a proof sent again (a
//! replay), a proof before any challenge, or a proof computed for another
//! connection's nonce fails. An unknown app key gets a decoy salt derived from a
//! broker secret, so the answer does not tell whether the key exists; its proof
//! then fails like a wrong secret.

use super::{hmac, StoredCredential, KEY_BYTES};
use crate::wire::{ErrorCode, WireError};

/// A pending challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Challenge {
    app_key: String,
    client_nonce: [u8; KEY_BYTES],
    server_nonce: [u8; KEY_BYTES],
    /// `None` for an unknown app key (its proof always fails).
    credential: Option<StoredCredential>,
}

/// Where a connection is in the exchange.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AuthState {
    /// Nothing proved yet.
    #[default]
    Anonymous,
    /// A challenge was sent; the next `AuthProof` answers it.
    Challenged(Box<ChallengeState>),
    /// The connection acts for this principal.
    Authenticated {
        /// The app key proved.
        principal: String,
    },
}

/// A pending challenge (boxed in [`AuthState`] to keep the state small).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChallengeState(Challenge);

/// The salt a broker answers for an app key it does not know: stable for the
/// key (so asking twice does not reveal anything) and unguessable without
/// `broker_key`.
pub fn decoy_salt(broker_key: &[u8; KEY_BYTES], app_key: &str) -> [u8; 16] {
    let full = hmac(broker_key, &[b"decoy salt", app_key.as_bytes()]);
    let mut salt = [0u8; 16];
    salt.copy_from_slice(&full[..16]);
    salt
}

impl AuthState {
    /// The principal this connection proved, if any.
    pub fn principal(&self) -> Option<&str> {
        match self {
            AuthState::Authenticated { principal } => Some(principal),
            _ => None,
        }
    }

    /// An `AuthStart`: remembers the challenge and returns the salt to answer
    /// with. `credential` is the principal's (`None`: unknown app key, answered
    /// with `decoy`).
    pub fn start(
        &mut self,
        app_key: &str,
        client_nonce: [u8; KEY_BYTES],
        server_nonce: [u8; KEY_BYTES],
        credential: Option<&StoredCredential>,
        decoy: [u8; 16],
    ) -> Result<[u8; 16], WireError> {
        if let AuthState::Authenticated { principal } = self {
            return Err(WireError::new(
                ErrorCode::InvalidRequest,
                format!("this connection is authenticated as {principal:?} already; open a new one to change"),
            ));
        }
        super::validate_app_key(app_key)?;
        let salt = credential.map_or(decoy, |c| c.salt);
        *self = AuthState::Challenged(Box::new(ChallengeState(Challenge {
            app_key: app_key.to_string(),
            client_nonce,
            server_nonce,
            credential: credential.cloned(),
        })));
        Ok(salt)
    }

    /// An `AuthProof`: the principal on success. The challenge is used up either
    /// way.
    pub fn prove(&mut self, proof: &[u8; KEY_BYTES]) -> Result<String, WireError> {
        let c = match std::mem::take(self) {
            AuthState::Challenged(c) => c,
            other => {
                *self = other;
                // `InvalidRequest`, not `Unauthenticated`: nothing was wrong with
                // the credentials. An honest client gets this when the broker
                // restarted between its challenge and the proof, and runs the
                // exchange again; a wrong proof is what refuses credentials.
                return Err(WireError::new(
                    ErrorCode::InvalidRequest,
                    "no challenge is pending on this connection: send AuthStart first (a proof answers one challenge only)",
                ));
            }
        };
        let Challenge { app_key, client_nonce, server_nonce, credential } = c.0;
        let ok = credential.is_some_and(|cred| cred.verify(&app_key, &server_nonce, &client_nonce, proof));
        if ok {
            *self = AuthState::Authenticated { principal: app_key.clone() };
            Ok(app_key)
        } else {
            Err(WireError::new(ErrorCode::Unauthenticated, "wrong app key or secret"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::client_proof;
    use super::*;

    const SALT: [u8; 16] = [3; 16];
    const CN: [u8; KEY_BYTES] = [4; KEY_BYTES];
    const SN: [u8; KEY_BYTES] = [5; KEY_BYTES];
    const BROKER_KEY: [u8; KEY_BYTES] = [6; KEY_BYTES];

    fn cred() -> StoredCredential {
        StoredCredential::new(b"s3cret", SALT)
    }

    #[test]
    fn the_right_proof_authenticates_the_connection() {
        let mut s = AuthState::default();
        let salt = s.start("app", CN, SN, Some(&cred()), decoy_salt(&BROKER_KEY, "app")).unwrap();
        assert_eq!(salt, SALT);
        let proof = client_proof(b"s3cret", &salt, "app", &SN, &CN);
        assert_eq!(s.prove(&proof).unwrap(), "app");
        assert_eq!(s.principal(), Some("app"));
        let again = s.start("other", CN, SN, None, [0; 16]).unwrap_err();
        assert_eq!(again.code, ErrorCode::InvalidRequest);
        assert_eq!(s.principal(), Some("app"), "a refused restart changes nothing");
    }

    #[test]
    fn a_wrong_secret_fails_and_uses_the_challenge_up() {
        let mut s = AuthState::default();
        s.start("app", CN, SN, Some(&cred()), [0; 16]).unwrap();
        let bad = client_proof(b"guess", &SALT, "app", &SN, &CN);
        assert_eq!(s.prove(&bad).unwrap_err().code, ErrorCode::Unauthenticated);
        assert_eq!(s, AuthState::Anonymous);
        let good = client_proof(b"s3cret", &SALT, "app", &SN, &CN);
        // No challenge left: a protocol-order error, not a verdict on the secret.
        assert_eq!(s.prove(&good).unwrap_err().code, ErrorCode::InvalidRequest, "the challenge is gone");
    }

    #[test]
    fn a_replayed_proof_fails_on_a_new_challenge() {
        let mut s = AuthState::default();
        s.start("app", CN, SN, Some(&cred()), [0; 16]).unwrap();
        let proof = client_proof(b"s3cret", &SALT, "app", &SN, &CN);
        // Captured from another connection whose server nonce was SN; this one
        // was challenged with a fresh nonce.
        let mut other = AuthState::default();
        other.start("app", CN, [9; KEY_BYTES], Some(&cred()), [0; 16]).unwrap();
        assert_eq!(other.prove(&proof).unwrap_err().code, ErrorCode::Unauthenticated);
        assert_eq!(s.prove(&proof).unwrap(), "app");
    }

    #[test]
    fn a_proof_before_a_challenge_fails_and_keeps_the_state() {
        let mut s = AuthState::default();
        assert_eq!(s.prove(&[0; KEY_BYTES]).unwrap_err().code, ErrorCode::InvalidRequest);
        assert_eq!(s, AuthState::Anonymous);
        let mut done = AuthState::Authenticated { principal: "app".into() };
        assert_eq!(done.prove(&[0; KEY_BYTES]).unwrap_err().code, ErrorCode::InvalidRequest);
        assert_eq!(done.principal(), Some("app"), "a stray proof does not log anyone out");
    }

    #[test]
    fn an_unknown_app_key_gets_a_stable_decoy_salt_and_cannot_log_in() {
        let decoy = decoy_salt(&BROKER_KEY, "ghost");
        assert_eq!(decoy, decoy_salt(&BROKER_KEY, "ghost"));
        assert_ne!(decoy, decoy_salt(&BROKER_KEY, "ghost2"));
        assert_ne!(decoy, decoy_salt(&[7; KEY_BYTES], "ghost"));
        let mut s = AuthState::default();
        assert_eq!(s.start("ghost", CN, SN, None, decoy).unwrap(), decoy);
        let proof = client_proof(b"anything", &decoy, "ghost", &SN, &CN);
        assert_eq!(s.prove(&proof).unwrap_err().code, ErrorCode::Unauthenticated);
    }

    #[test]
    fn a_malformed_app_key_is_refused() {
        let mut s = AuthState::default();
        for key in ["", "has space", &"k".repeat(200)] {
            assert_eq!(s.start(key, CN, SN, None, [0; 16]).unwrap_err().code, ErrorCode::InvalidRequest);
        }
        assert_eq!(s, AuthState::Anonymous);
    }
}
