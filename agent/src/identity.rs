//! Who this agent is, whatever address it is reached at: the machine's id
//! and the network namespace whose routing state the agent serves. A collector keys its
//! record of the agent by the pair, so that the record continues when the
//! address changes, and refuses a second agent claiming the same pair.

use std::path::Path;

use crate::config::NetnsSelection;
use crate::netns;

/// Where the machine's id is read from (systemd's, also present in most
/// container images built on a distribution).
const MACHINE_ID: &str = "/etc/machine-id";

/// The agent's identity, as GetInfo reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// `--agent-id`, else /etc/machine-id; empty when there is neither.
    pub agent_id: String,
    /// The network namespace served: `--netns NAME`'s name; else the
    /// agent's own namespace, by its name in the namespace directory, else
    /// `net:[INODE]` (`--netns all` serves the others beside its own).
    pub netns: String,
}

impl Identity {
    /// The identity of this process: `agent_id` (`--agent-id`) or the
    /// machine's id, and the namespace `selection` serves, named as the
    /// namespaces in `netns_dir` are (`ip netns`).
    pub fn of_this_agent(
        agent_id: Option<&str>,
        selection: &NetnsSelection,
        netns_dir: &Path,
    ) -> Identity {
        let agent_id = match agent_id.map(str::trim).filter(|id| !id.is_empty()) {
            Some(id) => id.to_owned(),
            None => match std::fs::read_to_string(MACHINE_ID) {
                Ok(id) => id.trim().to_owned(),
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        "cannot read {MACHINE_ID}: this agent reports no identity, so collectors key its record by the address they dial; give it --agent-id"
                    );
                    String::new()
                }
            },
        };
        let netns = match (selection, netns::own_id()) {
            (NetnsSelection::Named(name), _) => name.clone(),
            // A name is the handle operators use; the inode is what is
            // left when there is none. The host's own namespace has a
            // fixed inode (4026531833 on current kernels), so its name
            // outlives reboots too.
            (_, Ok(own)) => netns::scan(netns_dir)
                .found
                .into_iter()
                .find(|(_, id)| *id == own)
                .map(|(name, _)| name)
                .unwrap_or_else(|| format!("net:[{}]", own.ino())),
            (_, Err(e)) => {
                tracing::warn!(error = %e, "cannot read this agent's network namespace");
                String::new()
            }
        };
        Identity { agent_id, netns }
    }

    /// `AGENT_ID/NETNS`, as the `routewatch-agent-id` header carries it;
    /// `None` without an agent id.
    pub fn key(&self) -> Option<String> {
        (!self.agent_id.is_empty()).then(|| format!("{}/{}", self.agent_id, self.netns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_joins_the_id_and_the_namespace() {
        let id = Identity {
            agent_id: "3d1219c7".into(),
            netns: "blue".into(),
        };
        assert_eq!(id.key().as_deref(), Some("3d1219c7/blue"));
        assert_eq!(Identity::default().key(), None);
    }

    #[test]
    fn an_agent_id_given_wins_over_the_machine_id() {
        let none = Path::new("/nonexistent");
        let id = Identity::of_this_agent(Some(" node-7 "), &NetnsSelection::Own, none);
        assert_eq!(id.agent_id, "node-7");
        assert!(id.netns.starts_with("net:["), "{}", id.netns);
        let named = NetnsSelection::Named("blue".into());
        let id = Identity::of_this_agent(Some("node-7"), &named, none);
        assert_eq!(id.netns, "blue", "the namespace served names it");
    }
}
