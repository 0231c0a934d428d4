//! The client side of authentication (docs/security.md), shared by every client
//! machine: per broker, whether this client has proved its principal there, and
//! the two-step exchange (`AuthStart`, then `AuthProof` for the broker's
//! challenge). A client machine asks [`ClientAuth::ready`] before sending a request
//! to a broker; when the answer is a request to send first, it holds its own
//! request until [`ClientAuth::on_response`] reports the broker authenticated it.
//! A broker restart forgets every connection, so an `Unauthenticated` answer to an
//! ordinary request makes the client run the exchange again ([`ClientAuth::forget`]).
//! A refused proof means wrong credentials: a fatal, clear error, never a retry
//! loop.

use crate::ids::{CorrelationId, NodeId};
use crate::rng::Rng;
use crate::security::{client_proof, KEY_BYTES};
use crate::wire::{ErrorCode, RequestBody, ResponseBody, WireError};
use rand::RngCore as _;
use std::collections::BTreeMap;

/// An app key and its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The principal.
    pub app_key: String,
    /// Its secret (kept in the client only).
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("app_key", &self.app_key).field("secret", &"<redacted>").finish()
    }
}

impl Credentials {
    /// Credentials from an app key and secret.
    pub fn new(app_key: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        Credentials { app_key: app_key.into(), secret: secret.into() }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    /// `AuthStart` sent with this nonce.
    Started { correlation: CorrelationId, client_nonce: [u8; KEY_BYTES] },
    /// `AuthProof` sent.
    Proving { correlation: CorrelationId },
    /// The broker knows this connection's principal.
    Done,
}

/// What [`ClientAuth::ready`] says about a broker.
#[derive(Clone, Debug, PartialEq)]
pub enum Readiness {
    /// Send requests to it.
    Ready,
    /// Send this first (with this correlation id), then wait.
    Send(CorrelationId, RequestBody),
    /// The exchange is under way: wait.
    Waiting,
}

/// What an answer did.
#[derive(Clone, Debug, PartialEq)]
pub enum AuthEvent {
    /// Not an answer to the exchange: the machine handles it.
    NotMine,
    /// Send this next (the proof).
    Send(NodeId, CorrelationId, RequestBody),
    /// The broker authenticated this client: send what was held.
    Authenticated(NodeId),
    /// The broker refused the credentials (or spoke out of turn): fatal.
    Refused(WireError),
    /// The exchange failed for a passing reason (the broker restarted, is not
    /// ready): start again later.
    Retry(NodeId),
}

/// Per-broker authentication state of one client.
#[derive(Clone, Debug)]
pub struct ClientAuth {
    credentials: Option<Credentials>,
    brokers: BTreeMap<NodeId, Step>,
}

impl ClientAuth {
    /// With `None`, every broker is ready at once (no authentication).
    pub fn new(credentials: Option<Credentials>) -> Self {
        ClientAuth { credentials, brokers: BTreeMap::new() }
    }

    /// Whether this client authenticates at all.
    pub fn enabled(&self) -> bool {
        self.credentials.is_some()
    }

    /// Whether requests may go to `broker` now; if not, what to send first.
    /// `next_correlation` names the `AuthStart` if one is needed.
    pub fn ready(
        &mut self,
        broker: NodeId,
        next_correlation: impl FnOnce() -> CorrelationId,
        rng: &mut Rng,
    ) -> Readiness {
        let Some(c) = &self.credentials else { return Readiness::Ready };
        match self.brokers.get(&broker) {
            Some(Step::Done) => Readiness::Ready,
            Some(_) => Readiness::Waiting,
            None => {
                let mut client_nonce = [0u8; KEY_BYTES];
                rng.fill_bytes(&mut client_nonce);
                let correlation = next_correlation();
                self.brokers.insert(broker, Step::Started { correlation, client_nonce });
                Readiness::Send(correlation, RequestBody::AuthStart { app_key: c.app_key.clone(), client_nonce })
            }
        }
    }

    /// The broker forgot us (it answered `Unauthenticated`, restarted, or the
    /// connection closed), or an exchange timed out: start again on next use.
    pub fn forget(&mut self, broker: NodeId) {
        self.brokers.remove(&broker);
    }

    /// Feeds an answer from `broker`; `next_correlation` names the proof.
    pub fn on_response(
        &mut self,
        broker: NodeId,
        correlation: CorrelationId,
        body: &Result<ResponseBody, WireError>,
        next_correlation: impl FnOnce() -> CorrelationId,
    ) -> AuthEvent {
        let Some(creds) = &self.credentials else { return AuthEvent::NotMine };
        let step = match self.brokers.get(&broker) {
            Some(Step::Started { correlation: c, client_nonce }) if *c == correlation => {
                Step::Started { correlation, client_nonce: *client_nonce }
            }
            Some(Step::Proving { correlation: c }) if *c == correlation => Step::Proving { correlation },
            _ => return AuthEvent::NotMine,
        };
        match (step, body) {
            (Step::Started { client_nonce, .. }, Ok(ResponseBody::AuthChallenge { salt, server_nonce })) => {
                let proof = client_proof(&creds.secret, salt, &creds.app_key, server_nonce, &client_nonce);
                let correlation = next_correlation();
                self.brokers.insert(broker, Step::Proving { correlation });
                AuthEvent::Send(broker, correlation, RequestBody::AuthProof { proof })
            }
            (Step::Proving { .. }, Ok(ResponseBody::Authenticated { .. })) => {
                self.brokers.insert(broker, Step::Done);
                AuthEvent::Authenticated(broker)
            }
            (_, Err(e)) if e.code.is_retriable() => {
                self.brokers.remove(&broker);
                AuthEvent::Retry(broker)
            }
            (_, Err(e)) => {
                self.brokers.remove(&broker);
                let message = if e.code == ErrorCode::Unauthenticated {
                    format!("broker {broker} refused the credentials of app key {:?}: {}", creds.app_key, e.message)
                } else {
                    format!("authentication with broker {broker} failed: {}", e.message)
                };
                AuthEvent::Refused(WireError::new(e.code, message))
            }
            (_, Ok(other)) => {
                self.brokers.remove(&broker);
                AuthEvent::Refused(WireError::new(
                    ErrorCode::InvalidRequest,
                    format!("broker {broker} answered the authentication exchange with {other:?}"),
                ))
            }
        }
    }

    /// The outstanding exchange requests (for timeouts): broker and correlation.
    pub fn outstanding(&self) -> impl Iterator<Item = (NodeId, CorrelationId)> + '_ {
        self.brokers.iter().filter_map(|(b, s)| match s {
            Step::Started { correlation, .. } | Step::Proving { correlation } => Some((*b, *correlation)),
            Step::Done => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Seed;
    use crate::security::session::AuthState;
    use crate::security::StoredCredential;

    fn corr() -> impl FnMut() -> CorrelationId {
        let mut n = 0;
        move || {
            n += 1;
            CorrelationId(n)
        }
    }

    /// Runs the exchange against a broker-side `AuthState` holding `stored`.
    fn exchange(auth: &mut ClientAuth, stored: &StoredCredential) -> AuthEvent {
        let mut rng = Seed(1).stream("t");
        let mut next = corr();
        let b = NodeId(1);
        let Readiness::Send(c1, RequestBody::AuthStart { app_key, client_nonce }) = auth.ready(b, &mut next, &mut rng)
        else {
            panic!("an exchange starts")
        };
        assert_eq!(auth.ready(b, &mut next, &mut rng), Readiness::Waiting);
        let mut broker = AuthState::default();
        let server_nonce = [7; KEY_BYTES];
        let salt = broker.start(&app_key, client_nonce, server_nonce, Some(stored), [0; 16]).unwrap();
        let challenge = Ok(ResponseBody::AuthChallenge { salt, server_nonce });
        let AuthEvent::Send(_, c2, RequestBody::AuthProof { proof }) = auth.on_response(b, c1, &challenge, &mut next)
        else {
            panic!("a proof follows")
        };
        let verdict = broker.prove(&proof).map(|principal| ResponseBody::Authenticated { principal });
        auth.on_response(b, c2, &verdict, &mut next)
    }

    #[test]
    fn the_right_secret_makes_the_broker_ready() {
        let mut auth = ClientAuth::new(Some(Credentials::new("app", "s3cret")));
        let stored = StoredCredential::new(b"s3cret", [2; 16]);
        assert_eq!(exchange(&mut auth, &stored), AuthEvent::Authenticated(NodeId(1)));
        let mut rng = Seed(1).stream("t");
        assert_eq!(auth.ready(NodeId(1), corr(), &mut rng), Readiness::Ready);
        auth.forget(NodeId(1));
        assert!(matches!(auth.ready(NodeId(1), corr(), &mut rng), Readiness::Send(..)), "forgotten: start again");
    }

    #[test]
    fn a_wrong_secret_is_a_clear_fatal_error() {
        let mut auth = ClientAuth::new(Some(Credentials::new("app", "guess")));
        let stored = StoredCredential::new(b"s3cret", [2; 16]);
        match exchange(&mut auth, &stored) {
            AuthEvent::Refused(e) => {
                assert_eq!(e.code, ErrorCode::Unauthenticated);
                assert!(e.message.contains("refused the credentials of app key \"app\""), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn without_credentials_everything_is_ready_and_no_answer_is_ours() {
        let mut auth = ClientAuth::new(None);
        let mut rng = Seed(1).stream("t");
        assert_eq!(auth.ready(NodeId(1), corr(), &mut rng), Readiness::Ready);
        let body = Ok(ResponseBody::Authenticated { principal: "x".into() });
        assert_eq!(auth.on_response(NodeId(1), CorrelationId(1), &body, corr()), AuthEvent::NotMine);
    }

    #[test]
    fn stray_answers_are_not_ours_and_retriable_errors_restart() {
        let mut auth = ClientAuth::new(Some(Credentials::new("app", "s")));
        let mut rng = Seed(1).stream("t");
        let Readiness::Send(c, _) = auth.ready(NodeId(1), corr(), &mut rng) else { panic!() };
        let other = Ok(ResponseBody::HeartbeatOk);
        assert_eq!(auth.on_response(NodeId(1), CorrelationId(c.0 + 5), &other, corr()), AuthEvent::NotMine);
        assert_eq!(auth.on_response(NodeId(2), c, &other, corr()), AuthEvent::NotMine);
        let not_ready = Err(WireError::new(ErrorCode::NotReady, "starting"));
        assert_eq!(auth.on_response(NodeId(1), c, &not_ready, corr()), AuthEvent::Retry(NodeId(1)));
        assert!(matches!(auth.ready(NodeId(1), corr(), &mut rng), Readiness::Send(..)));
        assert!(!format!("{:?}", Credentials::new("app", "s3cret")).contains("s3cret"), "secrets are not printed");
    }
}
