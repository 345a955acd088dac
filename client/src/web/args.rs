//! `web`'s command line. Every field's doc comment is its `--help` text.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use routewatch_agent::tls::TlsConfig;

use crate::store::DEFAULT_STORE;

/// `web`'s options.
#[derive(Debug, Args)]
pub struct Web {
    /// The store `routewatch collect` writes: sqlite://FILE or
    /// postgres://USER:PASSWORD@HOST/DATABASE. web only reads it (a
    /// read-only connection), and never creates or migrates it.
    #[arg(
        long,
        value_name = "URL",
        default_value = DEFAULT_STORE,
        env = "ROUTEWATCH_STORE"
    )]
    pub store: String,

    /// The address to serve on. A loopback address (the default) serves
    /// plain HTTP to this host's users; any other address needs TLS
    /// (--tls-cert, --tls-key) and a way for clients to prove who they are:
    /// mutual TLS (--client-ca, optionally --allow-client) or a bearer token
    /// (--token-file). Port 0 picks a free port (printed on stderr).
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:8080",
        env = "ROUTEWATCH_WEB_LISTEN"
    )]
    pub listen: SocketAddr,

    /// A file whose contents (surrounding white space trimmed; at least 16
    /// characters) is the bearer token every request must carry: the
    /// header `Authorization: Bearer TOKEN`, or, from a browser, the page
    /// opened once with `?token=TOKEN` (kept in a cookie afterwards).
    #[arg(long, value_name = "FILE", env = "ROUTEWATCH_WEB_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// Read-only connections to the store that pages share (each page
    /// holds one while it reads).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub connections: usize,

    /// TLS, as the agent serves it: the same flags, files and allow-list.
    #[command(flatten)]
    pub tls: TlsConfig,
}
