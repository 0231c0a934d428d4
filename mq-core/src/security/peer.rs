//! Inter-broker authentication with a cluster secret (DESIGN.md section 8,
//! docs/security.md section 5): every broker of a cluster is configured with the
//! same secret, and a broker that dials another proves it knows the secret before
//! anything it sends reaches the other's node.
//!
//! The exchange is a challenge-response on the dialed connection, before any
//! message: the accepting broker sends a fresh random nonce, the dialer answers
//!
//! ```text
//! proof = HMAC-SHA256(cluster_secret, "mq peer link v1" | dialer | acceptor | server_nonce)
//! ```
//!
//! (broker ids as 4 big-endian bytes). The accepting side recomputes it and
//! compares in constant time. The proof is bound to both broker ids (a proof for a
//! link to broker 2 does not open a link to broker 3, nor one claiming to come
//! from another broker) and to the nonce (a captured proof is useless on a new
//! connection). The secret never crosses the wire. The transport carrying the
//! exchange lives in mq-net; these functions are the whole of its cryptography.

use super::{hmac, KEY_BYTES};
use crate::ids::NodeId;

/// Domain separation from every other HMAC of the crate.
const PEER_LINK_LABEL: &[u8] = b"mq peer link v1";

/// The shortest cluster secret accepted: a shorter one is guessable offline from
/// one captured exchange.
pub const MIN_CLUSTER_SECRET_BYTES: usize = 16;

/// Checks a configured cluster secret; the error says what is wrong.
pub fn validate_cluster_secret(secret: &[u8]) -> Result<(), String> {
    if secret.len() < MIN_CLUSTER_SECRET_BYTES {
        return Err(format!(
            "the cluster secret has {} bytes; it needs at least {MIN_CLUSTER_SECRET_BYTES} (for example 32 random bytes, hex-encoded)",
            secret.len()
        ));
    }
    Ok(())
}

/// The dialer's proof for the accepting broker's challenge.
pub fn peer_link_proof(
    cluster_secret: &[u8],
    dialer: NodeId,
    acceptor: NodeId,
    server_nonce: &[u8; KEY_BYTES],
) -> [u8; KEY_BYTES] {
    hmac(cluster_secret, &[PEER_LINK_LABEL, &dialer.0.to_be_bytes(), &acceptor.0.to_be_bytes(), server_nonce])
}

/// Whether `proof` is the proof of `dialer` for a link to `acceptor` with this
/// nonce, compared in constant time.
pub fn verify_peer_link_proof(
    cluster_secret: &[u8],
    dialer: NodeId,
    acceptor: NodeId,
    server_nonce: &[u8; KEY_BYTES],
    proof: &[u8; KEY_BYTES],
) -> bool {
    let expected = peer_link_proof(cluster_secret, dialer, acceptor, server_nonce);
    expected.iter().zip(proof.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NONCE: [u8; KEY_BYTES] = [5; KEY_BYTES];

    #[test]
    fn the_same_secret_opens_the_link() {
        let proof = peer_link_proof(SECRET, NodeId(1), NodeId(2), &NONCE);
        assert!(verify_peer_link_proof(SECRET, NodeId(1), NodeId(2), &NONCE, &proof));
    }

    #[test]
    fn another_secret_fails() {
        let proof = peer_link_proof(b"another secret of 32 bytes......", NodeId(1), NodeId(2), &NONCE);
        assert!(!verify_peer_link_proof(SECRET, NodeId(1), NodeId(2), &NONCE, &proof));
    }

    #[test]
    fn a_proof_is_bound_to_both_brokers_and_the_nonce() {
        let proof = peer_link_proof(SECRET, NodeId(1), NodeId(2), &NONCE);
        assert!(!verify_peer_link_proof(SECRET, NodeId(3), NodeId(2), &NONCE, &proof), "another dialer");
        assert!(!verify_peer_link_proof(SECRET, NodeId(1), NodeId(3), &NONCE, &proof), "another acceptor");
        assert!(!verify_peer_link_proof(SECRET, NodeId(2), NodeId(1), &NONCE, &proof), "reflected");
        let fresh = [6; KEY_BYTES];
        assert!(!verify_peer_link_proof(SECRET, NodeId(1), NodeId(2), &fresh, &proof), "replayed on a new challenge");
    }

    #[test]
    fn the_proof_is_not_the_secret_and_short_secrets_are_refused() {
        let proof = peer_link_proof(SECRET, NodeId(1), NodeId(2), &NONCE);
        assert!(!proof.windows(8).any(|w| SECRET.windows(8).any(|s| s == w)));
        assert!(validate_cluster_secret(b"short").is_err());
        assert!(validate_cluster_secret(SECRET).is_ok());
    }
}
