//! Access control lists (DESIGN.md section 8): a principal may produce to, consume
//! from, or administer a topic (and consume as a group); admin on the cluster
//! covers everything. Grants name a resource exactly or with a trailing `*` prefix
//! (`orders.*`). There are no deny rules: what is not granted is refused.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// What a request wants to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Operation {
    /// Append to a topic.
    Produce,
    /// Read a topic, or consume as a group.
    Consume,
    /// Create, delete or configure; manage principals and ACLs on the cluster.
    Admin,
}

/// What a request acts on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Resource {
    /// A topic, by name or `prefix*`.
    Topic(String),
    /// A consumer group, by name or `prefix*`.
    Group(String),
    /// The cluster itself.
    Cluster,
}

/// One grant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Grant {
    /// Who (an app key).
    pub principal: String,
    /// What operation.
    pub operation: Operation,
    /// On what.
    pub resource: Resource,
}

fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

fn resource_matches(granted: &Resource, wanted: &Resource) -> bool {
    match (granted, wanted) {
        (Resource::Cluster, Resource::Cluster) => true,
        (Resource::Topic(p), Resource::Topic(n)) | (Resource::Group(p), Resource::Group(n)) => name_matches(p, n),
        _ => false,
    }
}

/// The grants in force.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acls {
    grants: BTreeSet<Grant>,
}

impl Acls {
    /// Adds a grant.
    pub fn grant(&mut self, g: Grant) {
        self.grants.insert(g);
    }

    /// Removes a grant.
    pub fn revoke(&mut self, g: &Grant) {
        self.grants.remove(g);
    }

    /// Removes every grant naming `principal`.
    pub fn revoke_principal(&mut self, principal: &str) {
        self.grants.retain(|g| g.principal != principal);
    }

    /// Every grant, in order.
    pub fn grants(&self) -> impl Iterator<Item = &Grant> {
        self.grants.iter()
    }

    /// Number of grants.
    pub fn len(&self) -> usize {
        self.grants.len()
    }

    /// True when nothing is granted.
    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    /// Whether `principal` may do `operation` on `resource`: an exact or prefix
    /// grant of that operation on it, or admin on the cluster.
    pub fn allows(&self, principal: &str, operation: Operation, resource: &Resource) -> bool {
        self.grants.iter().filter(|g| g.principal == principal).any(|g| {
            (g.operation == Operation::Admin && g.resource == Resource::Cluster)
                || (g.operation == operation && resource_matches(&g.resource, resource))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(p: &str, op: Operation, r: Resource) -> Grant {
        Grant { principal: p.into(), operation: op, resource: r }
    }

    #[test]
    fn only_what_is_granted_is_allowed() {
        let mut acls = Acls::default();
        acls.grant(g("app", Operation::Produce, Resource::Topic("orders".into())));
        assert!(acls.allows("app", Operation::Produce, &Resource::Topic("orders".into())));
        assert!(!acls.allows("app", Operation::Consume, &Resource::Topic("orders".into())));
        assert!(!acls.allows("app", Operation::Produce, &Resource::Topic("orders2".into())));
        assert!(!acls.allows("other", Operation::Produce, &Resource::Topic("orders".into())));
    }

    #[test]
    fn prefixes_match_and_cluster_admin_covers_everything() {
        let mut acls = Acls::default();
        acls.grant(g("app", Operation::Consume, Resource::Group("billing-*".into())));
        acls.grant(g("root", Operation::Admin, Resource::Cluster));
        assert!(acls.allows("app", Operation::Consume, &Resource::Group("billing-eu".into())));
        assert!(!acls.allows("app", Operation::Consume, &Resource::Topic("billing-eu".into())));
        assert!(acls.allows("root", Operation::Produce, &Resource::Topic("anything".into())));
        acls.revoke(&g("root", Operation::Admin, Resource::Cluster));
        assert!(!acls.allows("root", Operation::Produce, &Resource::Topic("anything".into())));
    }
}
