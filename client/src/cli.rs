//! The command line. Every field's doc comment is its `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::certs::Certs;
use crate::printer::Format;
use crate::tls::TlsArgs;

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
    /// A remote target that is down or goes away is retried until
    /// routewatch is stopped (with backoff, at least every 10 seconds), and
    /// its stream resumes where it stopped: no line is printed twice or
    /// skipped. When the agent cannot resume (it restarted, or the client
    /// was away too long) it says so with a resync and a fresh snapshot.
    ///
    /// Examples:
    ///   routewatch tail                               # this host, in process
    ///   routewatch tail --ca ca.pem --cert client.pem --key client-key.pem host1:50051 host2:50051
    ///   routewatch tail --insecure 10.0.0.1:50051     # an agent serving plaintext
    ///   routewatch tail -o json | jq 'select(.action=="delete")'
    ///   routewatch tail --ca ca.pem -o json --cursor-file pos.json host1:50051 >> log
    #[command(verbatim_doc_comment)]
    Tail(Tail),
    /// Print the current routes and nexthop objects, then exit.
    ///
    /// Fails (exit status 1) when a target cannot be reached: nothing is
    /// retried.
    ///
    /// Examples:
    ///   routewatch show
    ///   routewatch show --ca ca.pem --cert client.pem --key client-key.pem host1:50051 -o json
    ///   routewatch show --insecure 10.0.0.1:50051
    #[command(verbatim_doc_comment)]
    Show(Watch),
    /// Make certificates for trying mutual TLS.
    #[command(subcommand)]
    Certs(Certs),
}

/// `tail`'s options.
#[derive(Debug, Args)]
pub struct Tail {
    #[command(flatten)]
    pub watch: Watch,

    /// Remember where each remote target's stream stopped in FILE, and
    /// resume from there on the next start, without a snapshot. Written
    /// atomically about once a second while changes arrive and on exit,
    /// only ever with positions whose lines are already on stdout: a
    /// restarted tail never skips a line. After a clean exit (Ctrl-C,
    /// SIGTERM) it prints none twice either; after a crash, the lines of
    /// the last second or so may come again. A missing file starts from a
    /// snapshot. This host in process (no TARGET) has no lasting position
    /// and is not recorded.
    #[arg(long, value_name = "FILE", env = "ROUTEWATCH_CURSOR_FILE")]
    pub cursor_file: Option<PathBuf>,
}

/// What to watch and how to print it.
#[derive(Debug, Args)]
pub struct Watch {
    /// Agents to subscribe to, as HOST:PORT. None: this host, in process.
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,

    /// Connect to agents in plaintext (the agent must run with --insecure).
    /// Without it, routewatch connects with TLS.
    #[arg(long, env = "ROUTEWATCH_INSECURE")]
    pub insecure: bool,

    #[command(flatten)]
    pub tls: TlsArgs,

    /// Output format: `text` reads like `ip monitor route`; `json` prints one
    /// object per line with the field names of `ip -j -d route show`.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text, env = "ROUTEWATCH_OUTPUT")]
    pub format: Format,

    /// Response compression to accept from agents: `auto` accepts gzip and
    /// zstd (the agent chooses; worth it on slow links and for large
    /// snapshots), `none` asks for uncompressed responses (saves CPU on
    /// fast links). Requests are never compressed.
    #[arg(long, value_enum, default_value_t = Compression::Auto, env = "ROUTEWATCH_COMPRESSION")]
    pub compression: Compression,
}

/// `--compression` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    /// Accept gzip and zstd.
    Auto,
    /// Accept uncompressed responses only.
    None,
}
