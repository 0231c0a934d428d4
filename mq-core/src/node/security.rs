//! Authentication and authorization on the broker (docs/security.md). With
//! `NodeConfig::auth` set, a client connection must prove a principal
//! (`AuthStart` / `AuthProof`, `security::session`) before any other request, and
//! each request needs the grants of `authorize`; a refused request gets
//! `Unauthenticated` or `Unauthorized` and changes nothing. Principals and grants
//! live in the metadata log (created through the controller, like topics); the
//! bootstrap admin comes from the configuration. Without `auth`, every client may
//! do everything.

use super::{not_ready, Node};
use crate::contract::Peer;
use crate::controller::ControllerRequest;
use crate::ids::CorrelationId;
use crate::rng::Rng;
use crate::security::acl::{Operation, Resource};
use crate::security::session::{decoy_salt, AuthState};
use crate::security::{validate_app_key, validate_grant, KEY_BYTES};
use crate::wire::{ErrorCode, RequestBody, ResponseBody, WireError};
use rand::RngCore as _;

/// Random bytes from a seeded stream (nonces, the broker's decoy key).
pub(super) fn random_key(rng: &mut Rng) -> [u8; KEY_BYTES] {
    let mut k = [0u8; KEY_BYTES];
    rng.fill_bytes(&mut k);
    k
}

impl Node {
    /// Whether the connection may make `body`: always without `auth`; else only
    /// `AuthStart`/`AuthProof` before authenticating, and afterwards what the
    /// principal's grants allow. Brokers (peer connections, authenticated by the
    /// transport with the cluster secret) may do everything.
    pub(super) fn authorize(&self, from: Peer, body: &RequestBody) -> Result<(), WireError> {
        let Some(auth) = &self.config.auth else { return Ok(()) };
        let client = match from {
            Peer::Node(_) => return Ok(()),
            Peer::Client(c) => c,
        };
        if matches!(body, RequestBody::AuthStart { .. } | RequestBody::AuthProof { .. }) {
            return Ok(());
        }
        let Some(principal) = self.auth.get(&client).and_then(AuthState::principal) else {
            return Err(WireError::new(
                ErrorCode::Unauthenticated,
                "this connection has not authenticated: send AuthStart and AuthProof with your app key and secret first",
            ));
        };
        if principal == auth.admin_app_key {
            return Ok(());
        }
        let acls = &self.image.acls;
        for (operation, resource) in required(body) {
            if !acls.allows(principal, operation, &resource) {
                return Err(WireError::new(
                    ErrorCode::Unauthorized,
                    format!("principal {principal:?} may not {operation:?} on {resource:?}; ask an admin for a grant"),
                ));
            }
        }
        Ok(())
    }

    /// `AuthStart`, `AuthProof` and the principal and ACL administration.
    pub(super) fn security_request(
        &mut self,
        from: Peer,
        corr: CorrelationId,
        body: RequestBody,
    ) -> Result<Option<ResponseBody>, WireError> {
        match body {
            RequestBody::AuthStart { app_key, client_nonce } => {
                let (client, auth) = self.auth_target(from)?;
                if !self.is_ready() {
                    // Until it has caught up on metadata (after a restart), the broker
                    // may not know principals that exist: a decoy challenge would turn
                    // good credentials into a fatal refusal (mq-sim, issue 7).
                    return Err(not_ready(self.id()));
                }
                let credential = if app_key == auth.admin_app_key {
                    Some(auth.admin_credential.clone())
                } else {
                    self.image.principals.get(&app_key).cloned()
                };
                let server_nonce = random_key(&mut self.rng);
                let decoy = decoy_salt(&self.broker_key, &app_key);
                let state = self.auth.entry(client).or_default();
                let salt = state.start(&app_key, client_nonce, server_nonce, credential.as_ref(), decoy)?;
                Ok(Some(ResponseBody::AuthChallenge { salt, server_nonce }))
            }
            RequestBody::AuthProof { proof } => {
                let (client, _) = self.auth_target(from)?;
                let state = self.auth.entry(client).or_default();
                let principal = match state.prove(&proof) {
                    Ok(p) => p,
                    Err(e) => {
                        self.coverage.hit(crate::coverage::Mark::ProofRefused);
                        return Err(e);
                    }
                };
                tracing::debug!(%client, %principal, "authenticated");
                Ok(Some(ResponseBody::Authenticated { principal }))
            }
            RequestBody::PutPrincipal { app_key, credential } => {
                validate_app_key(&app_key)?;
                self.security_change(from, corr, ControllerRequest::PutPrincipal { app_key, credential })
            }
            RequestBody::DeletePrincipal { app_key } => {
                validate_app_key(&app_key)?;
                self.security_change(from, corr, ControllerRequest::DeletePrincipal { app_key })
            }
            RequestBody::PutAcl(grant) => {
                validate_grant(&grant)?;
                self.security_change(from, corr, ControllerRequest::PutAcl(grant))
            }
            RequestBody::DeleteAcl(grant) => self.security_change(from, corr, ControllerRequest::DeleteAcl(grant)),
            RequestBody::DescribeSecurity => Ok(Some(ResponseBody::Security {
                principals: self.image.principals.keys().cloned().collect(),
                grants: self.image.acls.grants().cloned().collect(),
            })),
            other => Err(WireError::new(ErrorCode::InvalidRequest, format!("not a security request: {other:?}"))),
        }
    }

    /// The client connection an auth request is for, on a broker with auth on.
    fn auth_target(&self, from: Peer) -> Result<(crate::ids::ClientId, &super::AuthConfig), WireError> {
        let Some(auth) = &self.config.auth else {
            return Err(WireError::new(
                ErrorCode::InvalidRequest,
                "this broker runs without authentication; send requests directly",
            ));
        };
        match from {
            Peer::Client(c) => Ok((c, auth)),
            Peer::Node(_) => {
                Err(WireError::new(ErrorCode::InvalidRequest, "brokers authenticate with the cluster secret, not here"))
            }
        }
    }

    fn security_change(
        &mut self,
        from: Peer,
        corr: CorrelationId,
        request: ControllerRequest,
    ) -> Result<Option<ResponseBody>, WireError> {
        if !self.is_ready() {
            return Err(not_ready(self.id()));
        }
        self.forward(from, corr, request, ResponseBody::SecurityUpdated);
        Ok(None)
    }

    /// A client connection closed: forget what it proved.
    pub(super) fn forget_connection(&mut self, peer: Peer) {
        if let Peer::Client(c) = peer {
            self.auth.remove(&c);
        }
    }
}

/// The grants a request needs (all of them). Listing topics and metadata, and
/// asking for a producer id, need only an authenticated principal.
fn required(body: &RequestBody) -> Vec<(Operation, Resource)> {
    let topic = |t: &str| Resource::Topic(t.to_string());
    let group = |g: &str| Resource::Group(g.to_string());
    match body {
        RequestBody::CreateTopic(c) => vec![(Operation::Admin, topic(&c.name))],
        RequestBody::DeleteTopic { topic: t } => vec![(Operation::Admin, topic(t))],
        RequestBody::ListTopics | RequestBody::Metadata { .. } | RequestBody::InitProducer => Vec::new(),
        RequestBody::Produce { topic: t, .. } => vec![(Operation::Produce, topic(t))],
        RequestBody::Fetch { topic: t, .. } | RequestBody::ListOffsets { topic: t, .. } => {
            vec![(Operation::Consume, topic(t))]
        }
        RequestBody::FindCoordinator { group: g }
        | RequestBody::Heartbeat { group: g, .. }
        | RequestBody::LeaveGroup { group: g, .. } => vec![(Operation::Consume, group(g))],
        RequestBody::JoinGroup(j) => {
            let mut need = vec![(Operation::Consume, group(&j.group))];
            need.extend(j.topics.iter().map(|t| (Operation::Consume, topic(t))));
            need
        }
        RequestBody::GroupFetch(f) => {
            vec![(Operation::Consume, group(&f.view.group)), (Operation::Consume, topic(&f.tp.topic))]
        }
        RequestBody::GroupAck(a) => {
            vec![(Operation::Consume, group(&a.group)), (Operation::Consume, topic(&a.tp.topic))]
        }
        RequestBody::GroupSeek(s) => {
            vec![(Operation::Consume, group(&s.group)), (Operation::Consume, topic(&s.tp.topic))]
        }
        RequestBody::AuthStart { .. } | RequestBody::AuthProof { .. } => Vec::new(),
        RequestBody::PutPrincipal { .. }
        | RequestBody::DeletePrincipal { .. }
        | RequestBody::PutAcl(_)
        | RequestBody::DeleteAcl(_)
        | RequestBody::DescribeSecurity => vec![(Operation::Admin, Resource::Cluster)],
    }
}
