//! The agent's command line, in the library so that `routewatch man`
//! renders the agent's manual page from the same definition.

use clap::Parser;

use crate::AgentConfig;

/// Streams this host's routing tables (every table, IPv4 and IPv6, nexthop
/// objects) to routewatch subscribers over gRPC: a snapshot, then every
/// change, numbered, with nothing lost silently.
#[derive(Parser)]
#[command(name = "routewatch-agent", version)]
pub struct Cli {
    #[command(flatten)]
    pub config: AgentConfig,
}
