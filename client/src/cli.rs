//! The command line. Every field's doc comment is its `--help` text.

use clap::{Args, Parser, Subcommand};

use crate::printer::Format;

/// Follow Linux routing changes on this host or on many, exactly.
///
/// With no TARGET, routewatch reads this host's routing tables in process
/// (needs no agent, only the rights to open an rtnetlink socket). With
/// TARGETs (HOST:PORT of routewatch-agent), it subscribes to each agent.
#[derive(Debug, Parser)]
#[command(name = "routewatch", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the current routes, then every change as it happens.
    ///
    /// Examples:
    ///   routewatch tail                               # this host, in process
    ///   routewatch tail --insecure 10.0.0.1:50051 10.0.0.2:50051
    ///   routewatch tail -o json | jq 'select(.action=="delete")'
    #[command(verbatim_doc_comment)]
    Tail(Watch),
    /// Print the current routes and nexthop objects, then exit.
    ///
    /// Examples:
    ///   routewatch show
    ///   routewatch show --insecure 10.0.0.1:50051 -o json
    #[command(verbatim_doc_comment)]
    Show(Watch),
}

/// What to watch and how to print it.
#[derive(Debug, Args)]
pub struct Watch {
    /// Agents to subscribe to, as HOST:PORT. None: this host, in process.
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,

    /// Connect to agents in plaintext (the agent must run with --insecure).
    #[arg(long, env = "ROUTEWATCH_INSECURE")]
    pub insecure: bool,

    /// Output format: `text` reads like `ip monitor route`; `json` prints one
    /// object per line with the field names of `ip -j -d route show`.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text, env = "ROUTEWATCH_OUTPUT")]
    pub format: Format,
}
