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
//!
//! **In the machines.** The [`Producer`](crate::client::Producer),
//! [`GroupConsumer`](crate::client::GroupConsumer) and
//! [`Consumer`](crate::client::Consumer) take `credentials: Option<Credentials>` in
//! their configs (`None`, the default: no exchange, behaviour unchanged) and share
//! one `AuthGate` (crate-private) around `ClientAuth`:
//! - A request for a broker that has not authenticated the client is held (the
//!   exchange starts unless it is under way) and leaves when the broker answers
//!   `Authenticated`; the producer does not even build a produce request before
//!   (so a send that never left stays definitely failed), its metadata and
//!   producer-id requests are held like the consumers' requests.
//! - Exchange requests have the machine's request timeout. One unanswered, or
//!   refused for a passing reason (`NotReady`), runs again after the machine's
//!   backoff. If the lost answer was the `Authenticated`, the broker answers the
//!   next `AuthStart` on that connection "authenticated already"
//!   (`InvalidRequest`), which counts as authenticated.
//! - `Unauthenticated` in answer to another request (the broker restarted and
//!   forgot the connection) makes the machine forget the broker and retry the
//!   request through its usual retry path (backoff included); the exchange then
//!   runs first. A closed connection (`Input::Disconnected`) forgets the broker
//!   and drops what was held for it.
//! - The exchange itself refused (`Unauthenticated` to the proof: wrong secret or
//!   unknown app key; or any other non-retriable refusal) is fatal, with an error
//!   naming the app key: the producer fails every send not out with it
//!   (`ProduceOutcome::Failed`; `Indefinite` for a batch an earlier attempt may
//!   have appended; batches out end by their answer or deadline) and fails new
//!   sends at once; the group consumer reports `GroupEvent::Error`, drops its
//!   acks, seeks and records (with their events) and closes (`GroupEvent::Closed`,
//!   no `LeaveGroup`); the consumer reports `ConsumerOutput::Error` and stops
//!   (`poll_timeout` is `None`). Each exposes the refusal as `auth_error()`.
//! - `Unauthorized` (a missing grant) is not an authentication failure: it is the
//!   request's error as without credentials (a produce fails definitely).
//!
//! Nonces and the exchange's backoff jitter come from a stream of the machine's
//! seed, so runs stay deterministic.

use crate::client::retry::backoff;
use crate::ids::{CorrelationId, NodeId};
use crate::rng::Rng;
use crate::security::{client_proof, KEY_BYTES};
use crate::time::{Duration, Instant};
use crate::wire::{ErrorCode, Message, Request, RequestBody, ResponseBody, WireError};
use rand::RngCore as _;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

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
    /// Brokers forgotten while a proof was out or after it was accepted, on a
    /// connection that did not close: the broker may still hold this
    /// connection's principal (a lost `Authenticated` answer), and then refuses a
    /// second `AuthStart` with `InvalidRequest`, which means "ready".
    maybe_authenticated: BTreeSet<NodeId>,
    /// Brokers forgotten while an `AuthStart` or a proof was out on a connection
    /// that did not close: that request may still arrive after the next
    /// exchange's `AuthStart` and replace the challenge this client answers, so
    /// a refusal of the next proof is retried once before it counts (simulator
    /// seed 3337: a retried login's two `AuthStart`s arrived out of order).
    superseded: BTreeSet<NodeId>,
}

impl ClientAuth {
    /// With `None`, every broker is ready at once (no authentication).
    pub fn new(credentials: Option<Credentials>) -> Self {
        ClientAuth {
            credentials,
            brokers: BTreeMap::new(),
            maybe_authenticated: BTreeSet::new(),
            superseded: BTreeSet::new(),
        }
    }

    /// Whether requests may go to `broker` now (always without credentials).
    pub fn is_authenticated(&self, broker: NodeId) -> bool {
        self.credentials.is_none() || self.brokers.get(&broker) == Some(&Step::Done)
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

    /// The broker forgot us (it answered `Unauthenticated`: it restarted), or an
    /// exchange request went unanswered: start again on next use. For a closed
    /// connection use [`ClientAuth::disconnected`].
    pub fn forget(&mut self, broker: NodeId) {
        let step = self.brokers.remove(&broker);
        if matches!(step, Some(Step::Proving { .. } | Step::Done)) {
            self.maybe_authenticated.insert(broker);
        }
        if matches!(step, Some(Step::Started { .. } | Step::Proving { .. })) {
            self.superseded.insert(broker);
        }
    }

    /// The connection to `broker` closed: a new one starts unauthenticated.
    pub fn disconnected(&mut self, broker: NodeId) {
        self.brokers.remove(&broker);
        self.maybe_authenticated.remove(&broker);
        self.superseded.remove(&broker);
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
                self.maybe_authenticated.remove(&broker);
                self.superseded.remove(&broker);
                AuthEvent::Authenticated(broker)
            }
            // The proof answered our newest challenge, but an `AuthStart` of an
            // abandoned exchange may have reached the broker after it and replaced
            // that challenge: run the exchange once more before believing it.
            (Step::Proving { .. }, Err(e))
                if e.code == ErrorCode::Unauthenticated && self.superseded.remove(&broker) =>
            {
                self.brokers.remove(&broker);
                AuthEvent::Retry(broker)
            }
            // "Authenticated already": the answer to an earlier proof was lost.
            (Step::Started { .. }, Err(e))
                if e.code == ErrorCode::InvalidRequest && self.maybe_authenticated.remove(&broker) =>
            {
                self.brokers.insert(broker, Step::Done);
                AuthEvent::Authenticated(broker)
            }
            // "No challenge is pending": the broker lost the challenge this proof
            // answers (it restarted meanwhile, simulator seed 1276). Nothing was
            // said about the credentials: run the exchange again.
            (Step::Proving { .. }, Err(e)) if e.code == ErrorCode::InvalidRequest => {
                self.brokers.remove(&broker);
                AuthEvent::Retry(broker)
            }
            (_, Err(e)) if e.code.is_retriable() => {
                self.brokers.remove(&broker);
                AuthEvent::Retry(broker)
            }
            (_, Err(e)) => {
                self.brokers.remove(&broker);
                self.maybe_authenticated.remove(&broker);
                let message = if e.code == ErrorCode::Unauthenticated {
                    format!("broker {broker} refused the credentials of app key {:?}: {}", creds.app_key, e.message)
                } else {
                    format!("authentication with broker {broker} failed: {}", e.message)
                };
                AuthEvent::Refused(WireError::new(e.code, message))
            }
            (_, Ok(other)) => {
                self.brokers.remove(&broker);
                self.maybe_authenticated.remove(&broker);
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

/// An output type of a client machine that can carry a request to a broker.
pub(crate) trait SendOutput {
    /// `msg` for `to`.
    fn send(to: NodeId, msg: Message) -> Self;
}

/// The next correlation id of a machine's counter.
fn next_correlation(counter: &mut u64) -> CorrelationId {
    let c = CorrelationId(*counter);
    *counter += 1;
    c
}

/// What [`AuthGate::on_response`] made of an answer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Routed {
    /// An answer to the exchange, dealt with (requests it released are out).
    Exchange,
    /// The broker refused the credentials: fatal for the machine.
    Refused(WireError),
    /// The machine's own answer.
    NotMine,
}

/// A request held until its broker authenticates this client.
#[derive(Clone, Debug)]
struct Held {
    deadline: Instant,
    request: Request,
}

/// The hold-until-authenticated logic every client machine shares: a
/// [`ClientAuth`] plus what a machine needs around it. A request for a broker that
/// has not authenticated the client is held (the exchange starts if it is not
/// under way) and leaves once the broker answers `Authenticated`, unless its
/// deadline passed meanwhile (the machine treats it as unanswered at the same
/// deadline). The exchange requests have deadlines like any request; one that
/// goes unanswered, or fails for a passing reason (`NotReady`), is run again after
/// a backoff with jitter from the gate's seeded stream, which also draws the
/// nonces. A refusal of the credentials is kept: nothing is sent afterwards.
/// Without credentials every call passes requests straight through.
#[derive(Clone, Debug)]
pub(crate) struct AuthGate {
    auth: ClientAuth,
    rng: Rng,
    request_timeout: Duration,
    backoff_first: Duration,
    backoff_max: Duration,
    now: Instant,
    /// The deadline of the exchange request out, per broker.
    exchanges: BTreeMap<NodeId, Instant>,
    /// Exchange failures in a row, and when the exchange may run again, per broker.
    failures: BTreeMap<NodeId, (u32, Instant)>,
    held: BTreeMap<NodeId, Vec<Held>>,
    refused: Option<WireError>,
}

impl AuthGate {
    /// A gate for `credentials` (`None`: no authentication); `rng` is a stream of
    /// the machine's seed; exchange requests wait `request_timeout` for their
    /// answer and are retried after `backoff_first`, doubling up to `backoff_max`.
    pub(crate) fn new(
        credentials: Option<Credentials>,
        rng: Rng,
        request_timeout: Duration,
        backoff_first: Duration,
        backoff_max: Duration,
    ) -> Self {
        AuthGate {
            auth: ClientAuth::new(credentials),
            rng,
            request_timeout,
            backoff_first,
            backoff_max,
            now: Instant::ZERO,
            exchanges: BTreeMap::new(),
            failures: BTreeMap::new(),
            held: BTreeMap::new(),
            refused: None,
        }
    }

    /// The refusal of the credentials, once a broker refused them.
    pub(crate) fn refused(&self) -> Option<&WireError> {
        self.refused.as_ref()
    }

    /// Whether requests to `broker` leave at once.
    pub(crate) fn is_ready(&self, broker: NodeId) -> bool {
        self.auth.is_authenticated(broker)
    }

    /// True when a request answered `code` should be retried after the exchange
    /// runs again: `Unauthenticated` with credentials (the broker restarted and
    /// forgot this connection). Without credentials it is a refusal like others.
    pub(crate) fn reauthenticates(&self, code: ErrorCode) -> bool {
        self.auth.enabled() && code == ErrorCode::Unauthenticated
    }

    /// True when requests to `broker` may leave; otherwise starts the exchange
    /// with it unless it is under way, in backoff, or the credentials were refused.
    pub(crate) fn start<O: SendOutput>(
        &mut self,
        now: Instant,
        broker: NodeId,
        correlations: &mut u64,
        out: &mut VecDeque<O>,
    ) -> bool {
        self.now = self.now.max(now);
        if self.auth.is_authenticated(broker) {
            return true;
        }
        let backing_off = self.failures.get(&broker).is_some_and(|(_, at)| *at > self.now);
        if self.refused.is_some() || backing_off {
            return false;
        }
        if let Readiness::Send(correlation, body) =
            self.auth.ready(broker, || next_correlation(correlations), &mut self.rng)
        {
            self.exchange(broker, Request { correlation, body }, out);
        }
        false
    }

    /// Sends `request` to `broker` now if it authenticated this client, else holds
    /// it until then (or until `deadline`), starting the exchange.
    pub(crate) fn send<O: SendOutput>(
        &mut self,
        now: Instant,
        broker: NodeId,
        request: Request,
        deadline: Instant,
        correlations: &mut u64,
        out: &mut VecDeque<O>,
    ) {
        if self.start(now, broker, correlations, out) {
            out.push_back(O::send(broker, Message::Request(request)));
        } else if self.refused.is_none() {
            self.held.entry(broker).or_default().push(Held { deadline, request });
        }
    }

    /// Feeds an answer from `broker` before the machine sees it: exchange answers
    /// are dealt with here. An `Unauthenticated` answer to another request from a
    /// broker that had authenticated this client makes the gate forget that
    /// broker; the machine retries the request ([`AuthGate::reauthenticates`]).
    pub(crate) fn on_response<O: SendOutput>(
        &mut self,
        now: Instant,
        broker: NodeId,
        correlation: CorrelationId,
        body: &Result<ResponseBody, WireError>,
        correlations: &mut u64,
        out: &mut VecDeque<O>,
    ) -> Routed {
        self.now = self.now.max(now);
        match self.auth.on_response(broker, correlation, body, || next_correlation(correlations)) {
            AuthEvent::NotMine => {
                let forgot = matches!(body, Err(e) if self.reauthenticates(e.code));
                if forgot && self.auth.is_authenticated(broker) {
                    self.auth.forget(broker);
                }
                Routed::NotMine
            }
            AuthEvent::Send(to, correlation, body) => {
                self.exchange(to, Request { correlation, body }, out);
                Routed::Exchange
            }
            AuthEvent::Authenticated(b) => {
                self.exchanges.remove(&b);
                self.failures.remove(&b);
                let now = self.now;
                for h in self.held.remove(&b).unwrap_or_default() {
                    if h.deadline > now {
                        out.push_back(O::send(b, Message::Request(h.request)));
                    }
                }
                Routed::Exchange
            }
            AuthEvent::Retry(b) => {
                self.exchange_failed(b);
                Routed::Exchange
            }
            AuthEvent::Refused(e) => {
                self.refused = Some(e.clone());
                self.stop();
                Routed::Refused(e)
            }
        }
    }

    /// The machine stopped: held requests are dropped and exchanges under way
    /// abandoned (their answers are not the gate's any more), so nothing more
    /// leaves through the gate.
    pub(crate) fn stop(&mut self) {
        self.held.clear();
        let brokers: Vec<NodeId> = self.exchanges.keys().copied().collect();
        for b in brokers {
            self.auth.forget(b);
        }
        self.exchanges.clear();
        self.failures.clear();
    }

    /// The connection to `broker` closed: a new one authenticates again; requests
    /// held for it are dropped (the machine counts them as lost).
    pub(crate) fn disconnected(&mut self, broker: NodeId) {
        self.auth.disconnected(broker);
        self.exchanges.remove(&broker);
        self.held.remove(&broker);
    }

    /// An `Input::Timeout` (like the machines' own deadlines, checked only then,
    /// so an answer that beats the timeout still counts): exchange requests past
    /// their deadline are given up (run again after a backoff), held requests
    /// past theirs dropped, and exchanges whose backoff ended run again for the
    /// brokers requests wait for.
    pub(crate) fn tick<O: SendOutput>(&mut self, now: Instant, correlations: &mut u64, out: &mut VecDeque<O>) {
        self.now = self.now.max(now);
        let now = self.now;
        let late: Vec<NodeId> = self.exchanges.iter().filter(|(_, d)| **d <= now).map(|(b, _)| *b).collect();
        for b in late {
            self.exchange_failed(b);
        }
        for held in self.held.values_mut() {
            held.retain(|h| h.deadline > now);
        }
        self.held.retain(|_, held| !held.is_empty());
        let waiting: Vec<NodeId> = self.held.keys().copied().collect();
        for b in waiting {
            self.start(now, b, correlations, out);
        }
    }

    /// When the gate next needs time to pass: an exchange deadline or the end of
    /// a backoff.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let deadlines = self.exchanges.values().copied();
        let backoffs = self.failures.values().map(|(_, at)| *at).filter(|at| *at > self.now);
        deadlines.chain(backoffs).min()
    }

    /// Panics if an internal invariant is broken.
    pub(crate) fn check_invariants(&self) {
        let out: BTreeSet<NodeId> = self.auth.outstanding().map(|(b, _)| b).collect();
        let timed: BTreeSet<NodeId> = self.exchanges.keys().copied().collect();
        assert_eq!(out, timed, "every exchange request out has a deadline");
        for b in self.held.keys() {
            assert!(!self.auth.is_authenticated(*b), "requests held for ready broker {b}");
        }
        if self.refused.is_some() {
            assert!(self.held.is_empty() && self.exchanges.is_empty(), "work kept after a refusal");
        }
    }

    fn exchange<O: SendOutput>(&mut self, broker: NodeId, request: Request, out: &mut VecDeque<O>) {
        self.exchanges.insert(broker, self.now.saturating_add(self.request_timeout));
        out.push_back(O::send(broker, Message::Request(request)));
    }

    /// The exchange with `broker` went unanswered or failed for a passing reason.
    fn exchange_failed(&mut self, broker: NodeId) {
        self.auth.forget(broker);
        self.exchanges.remove(&broker);
        let failures = self.failures.get(&broker).map_or(0, |(n, _)| *n) + 1;
        let wait = backoff(&mut self.rng, self.backoff_first, self.backoff_max, failures);
        self.failures.insert(broker, (failures, self.now + wait));
    }
}

/// A scripted broker's side of the exchange for the machines' unit tests.
#[cfg(test)]
pub(crate) mod scripted {
    use crate::security::session::AuthState;
    use crate::security::{StoredCredential, KEY_BYTES};
    use crate::wire::{ErrorCode, RequestBody, ResponseBody, WireError};

    /// One connection of a broker with auth on, knowing app key `app`.
    #[derive(Debug)]
    pub(crate) struct AuthBroker {
        stored: StoredCredential,
        state: AuthState,
        next_nonce: u8,
        /// Exchange requests answered.
        pub(crate) exchange_requests: usize,
    }

    impl AuthBroker {
        /// Knows app key `app` with `secret`.
        pub(crate) fn new(secret: &[u8]) -> Self {
            let stored = StoredCredential::new(secret, [3; 16]);
            AuthBroker { stored, state: AuthState::default(), next_nonce: 1, exchange_requests: 0 }
        }

        /// The answer to an exchange request; `None` for other requests.
        pub(crate) fn exchange(&mut self, body: &RequestBody) -> Option<Result<ResponseBody, WireError>> {
            let answer = match body {
                RequestBody::AuthStart { app_key, client_nonce } => {
                    let server_nonce = [self.next_nonce; KEY_BYTES];
                    self.next_nonce += 1;
                    let known = (app_key == "app").then_some(&self.stored);
                    let salt = self.state.start(app_key, *client_nonce, server_nonce, known, [0; 16]);
                    salt.map(|salt| ResponseBody::AuthChallenge { salt, server_nonce })
                }
                RequestBody::AuthProof { proof } => {
                    self.state.prove(proof).map(|principal| ResponseBody::Authenticated { principal })
                }
                _ => return None,
            };
            self.exchange_requests += 1;
            Some(answer)
        }

        /// `Unauthenticated` for a request before the exchange, like a broker.
        pub(crate) fn refuse_unauthenticated(&self) -> Option<Result<ResponseBody, WireError>> {
            self.state.principal().is_none().then(|| Err(WireError::new(ErrorCode::Unauthenticated, "log in first")))
        }

        /// The broker restarts: it forgets the connection's principal.
        pub(crate) fn restart(&mut self) {
            self.state = AuthState::default();
        }
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
        let (c2, proof, mut broker) = up_to_the_proof(auth, stored);
        let verdict = broker.prove(&proof).map(|principal| ResponseBody::Authenticated { principal });
        auth.on_response(NodeId(1), c2, &verdict, corr())
    }

    /// Runs the exchange with broker 1 up to the proof: the proof's correlation,
    /// the proof, and the broker side holding its challenge.
    fn up_to_the_proof(
        auth: &mut ClientAuth,
        stored: &StoredCredential,
    ) -> (CorrelationId, [u8; KEY_BYTES], AuthState) {
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
        (c2, proof, broker)
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

    /// Simulator seed 1276: the broker restarted between the challenge and the
    /// proof, so the new incarnation had no challenge pending. That is not a
    /// refusal of the credentials: the exchange runs again and succeeds.
    #[test]
    fn a_proof_that_finds_no_challenge_runs_the_exchange_again() {
        let mut auth = ClientAuth::new(Some(Credentials::new("app", "s3cret")));
        let stored = StoredCredential::new(b"s3cret", [2; 16]);
        let b = NodeId(1);
        let (c2, proof, _) = up_to_the_proof(&mut auth, &stored);
        let mut restarted = AuthState::default();
        let verdict = restarted.prove(&proof).map(|principal| ResponseBody::Authenticated { principal });
        assert_eq!(verdict.as_ref().unwrap_err().code, ErrorCode::InvalidRequest);
        assert_eq!(auth.on_response(b, c2, &verdict, corr()), AuthEvent::Retry(b));
        assert_eq!(exchange(&mut auth, &stored), AuthEvent::Authenticated(b), "the second exchange logs in");
    }

    /// Simulator seed 3337: a login timed out and was retried; the abandoned
    /// `AuthStart` reached the broker after the new one and replaced the challenge
    /// the client then answered, so a right proof was refused. The client runs the
    /// exchange once more; a wrong secret is still refused after that.
    #[test]
    fn a_proof_refused_after_an_abandoned_auth_start_is_retried_once() {
        for (secret, logs_in) in [("s3cret", true), ("guess", false)] {
            let mut auth = ClientAuth::new(Some(Credentials::new("app", secret)));
            let stored = StoredCredential::new(b"s3cret", [2; 16]);
            let mut rng = Seed(1).stream("t");
            let mut next = corr();
            let b = NodeId(1);
            let Readiness::Send(_, RequestBody::AuthStart { app_key, client_nonce: old_nonce }) =
                auth.ready(b, &mut next, &mut rng)
            else {
                panic!("an exchange starts")
            };
            auth.forget(b); // it timed out
            let Readiness::Send(c2, RequestBody::AuthStart { client_nonce, .. }) = auth.ready(b, &mut next, &mut rng)
            else {
                panic!("a second exchange starts")
            };
            let mut broker = AuthState::default();
            let salt = broker.start(&app_key, client_nonce, [7; KEY_BYTES], Some(&stored), [0; 16]).unwrap();
            // The abandoned AuthStart arrives last and replaces the challenge.
            broker.start(&app_key, old_nonce, [8; KEY_BYTES], Some(&stored), [0; 16]).unwrap();
            let challenge = Ok(ResponseBody::AuthChallenge { salt, server_nonce: [7; KEY_BYTES] });
            let AuthEvent::Send(_, c3, RequestBody::AuthProof { proof }) =
                auth.on_response(b, c2, &challenge, &mut next)
            else {
                panic!("a proof follows")
            };
            let verdict = broker.prove(&proof).map(|principal| ResponseBody::Authenticated { principal });
            assert_eq!(verdict.as_ref().unwrap_err().code, ErrorCode::Unauthenticated);
            assert_eq!(auth.on_response(b, c3, &verdict, &mut next), AuthEvent::Retry(b), "retried, not refused");
            match exchange(&mut auth, &stored) {
                AuthEvent::Authenticated(_) => assert!(logs_in),
                AuthEvent::Refused(e) => assert!(!logs_in && e.code == ErrorCode::Unauthenticated, "{e}"),
                other => panic!("{other:?}"),
            }
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

#[cfg(test)]
mod gate_tests {
    use super::scripted::AuthBroker;
    use super::*;
    use crate::rng::Seed;

    impl SendOutput for (NodeId, Request) {
        fn send(to: NodeId, msg: Message) -> Self {
            match msg {
                Message::Request(r) => (to, r),
                other => panic!("not a request: {other:?}"),
            }
        }
    }

    const B: NodeId = NodeId(1);

    struct Rig {
        gate: AuthGate,
        broker: AuthBroker,
        counter: u64,
        out: VecDeque<(NodeId, Request)>,
        now: Instant,
    }

    impl Rig {
        fn new(secret: &str) -> Rig {
            let timeout = Duration::from_millis(100);
            let gate = AuthGate::new(
                Some(Credentials::new("app", secret)),
                Seed(5).stream("t"),
                timeout,
                Duration::from_millis(10),
                Duration::from_millis(80),
            );
            Rig { gate, broker: AuthBroker::new(b"s3cret"), counter: 1, out: VecDeque::new(), now: Instant::ZERO }
        }

        /// Sends an ordinary request with correlation id 1000 + n.
        fn send(&mut self, n: u64, deadline_ms: u64) {
            let request = Request { correlation: CorrelationId(1000 + n), body: RequestBody::ListTopics };
            let deadline = Instant::from_millis(deadline_ms);
            self.gate.send(self.now, B, request, deadline, &mut self.counter, &mut self.out);
        }

        /// Answers the exchange requests out (dropping the answers `lose` picks);
        /// returns the correlation ids of the other requests sent meanwhile.
        fn serve(&mut self, mut lose: impl FnMut(&RequestBody) -> bool) -> Vec<u64> {
            let mut others = Vec::new();
            while let Some((to, r)) = self.out.pop_front() {
                match self.broker.exchange(&r.body) {
                    Some(answer) if !lose(&r.body) => {
                        let (counter, out) = (&mut self.counter, &mut self.out);
                        let routed = self.gate.on_response(self.now, to, r.correlation, &answer, counter, out);
                        if let Routed::Refused(e) = routed {
                            panic!("refused: {e}");
                        }
                    }
                    Some(_) => {}
                    None => others.push(r.correlation.0 - 1000),
                }
                self.gate.check_invariants();
            }
            others
        }

        fn tick(&mut self, at: Instant) {
            self.now = at;
            self.gate.tick(self.now, &mut self.counter, &mut self.out);
            self.gate.check_invariants();
        }
    }

    #[test]
    fn requests_wait_for_the_exchange_and_leave_in_order_once_authenticated() {
        let mut rig = Rig::new("s3cret");
        rig.send(1, 1_000);
        rig.send(2, 1_000);
        assert!(matches!(rig.out.front(), Some((_, Request { body: RequestBody::AuthStart { .. }, .. }))));
        assert_eq!(rig.out.len(), 1, "only the exchange leaves before the broker knows the client");
        assert_eq!(rig.serve(|_| false), vec![1, 2], "held requests follow the proof, in order");
        assert_eq!(rig.broker.exchange_requests, 2);
        rig.send(3, 1_000);
        assert_eq!(rig.serve(|_| false), vec![3], "an authenticated broker takes requests at once");
    }

    #[test]
    fn a_lost_answer_to_the_proof_runs_the_exchange_again_after_a_backoff() {
        let mut rig = Rig::new("s3cret");
        rig.send(1, 10_000);
        // The broker accepts the proof but its answer is lost.
        assert_eq!(rig.serve(|b| matches!(b, RequestBody::AuthProof { .. })), Vec::<u64>::new());
        assert_eq!(rig.gate.poll_timeout(), Some(Instant::from_millis(100)), "the proof's deadline");
        rig.tick(Instant::from_millis(100));
        assert!(rig.out.is_empty(), "no exchange again before the backoff ends");
        let retry_at = rig.gate.poll_timeout().expect("the end of the backoff");
        assert!(retry_at > Instant::from_millis(100) && retry_at <= Instant::from_millis(110), "{retry_at:?}");
        rig.tick(retry_at);
        assert!(matches!(rig.out.front(), Some((_, Request { body: RequestBody::AuthStart { .. }, .. }))));
        // The broker says "authenticated already": the connection is ready.
        assert_eq!(rig.serve(|_| false), vec![1]);
        assert!(rig.gate.is_ready(B));
    }

    #[test]
    fn held_requests_expire_at_their_deadline_and_a_closed_connection_drops_them() {
        let mut rig = Rig::new("s3cret");
        rig.send(1, 50);
        rig.out.clear(); // the AuthStart is lost
        rig.tick(Instant::from_millis(50));
        rig.tick(Instant::from_millis(100)); // the exchange times out
        let retry_at = rig.gate.poll_timeout().expect("a backoff");
        rig.send(2, 10_000);
        assert!(rig.out.is_empty(), "held while backing off");
        rig.tick(retry_at);
        assert_eq!(rig.serve(|_| false), vec![2], "the expired request never leaves");

        rig.gate.disconnected(B);
        rig.send(3, 10_000);
        rig.gate.disconnected(B);
        assert_eq!(rig.serve(|_| false), Vec::<u64>::new(), "dropped with the connection");
        assert!(!rig.gate.is_ready(B));
    }

    #[test]
    fn a_refused_proof_is_kept_and_nothing_is_sent_afterwards() {
        let mut rig = Rig::new("guess");
        rig.send(1, 1_000);
        let (to, r) = rig.out.pop_front().unwrap();
        let challenge = rig.broker.exchange(&r.body).unwrap();
        rig.gate.on_response(rig.now, to, r.correlation, &challenge, &mut rig.counter, &mut rig.out);
        let (to, r) = rig.out.pop_front().unwrap();
        let verdict = rig.broker.exchange(&r.body).unwrap();
        match rig.gate.on_response(rig.now, to, r.correlation, &verdict, &mut rig.counter, &mut rig.out) {
            Routed::Refused(e) => assert!(e.message.contains("app key \"app\""), "{e}"),
            other => panic!("{other:?}"),
        }
        rig.gate.check_invariants();
        rig.send(2, 1_000);
        rig.tick(Instant::from_millis(500));
        assert!(rig.out.is_empty() && rig.gate.poll_timeout().is_none(), "{:?}", rig.out);
        assert!(rig.gate.refused().is_some());
    }

    #[test]
    fn unauthenticated_answers_forget_an_authenticated_broker_only_with_credentials() {
        let mut rig = Rig::new("s3cret");
        rig.send(1, 1_000);
        rig.serve(|_| false);
        let unauth = Err(WireError::new(ErrorCode::Unauthenticated, "who?"));
        let routed = rig.gate.on_response(rig.now, B, CorrelationId(1001), &unauth, &mut rig.counter, &mut rig.out);
        assert_eq!(routed, Routed::NotMine, "the machine retries its request");
        assert!(rig.gate.reauthenticates(ErrorCode::Unauthenticated));
        assert!(!rig.gate.is_ready(B), "the next request runs the exchange again");

        let mut plain =
            AuthGate::new(None, Seed(5).stream("t"), Duration::from_millis(1), Duration::ZERO, Duration::ZERO);
        let mut out: VecDeque<(NodeId, Request)> = VecDeque::new();
        assert_eq!(plain.on_response(Instant::ZERO, B, CorrelationId(1), &unauth, &mut 1, &mut out), Routed::NotMine);
        assert!(!plain.reauthenticates(ErrorCode::Unauthenticated), "without credentials it is a refusal");
        assert!(plain.is_ready(B));
    }
}
