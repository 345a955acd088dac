//! How `routewatch` connects to agents. Every field's doc comment is its
//! `--help` text.

use std::path::PathBuf;

use clap::Args;

/// TLS options for remote targets. TLS is the default; `--insecure`
/// connects in plaintext instead.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// CA certificates (PEM) that issue the agents' certificates
    /// (`ca.pem` of `routewatch certs init`). Without it, the system's
    /// trust store is used.
    #[arg(long, env = "ROUTEWATCH_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,

    /// This client's certificate chain (PEM), for agents that require
    /// mutual TLS (routewatch-agent --client-ca). Needs --key.
    #[arg(long, env = "ROUTEWATCH_CERT", value_name = "FILE")]
    pub cert: Option<PathBuf>,

    /// Private key of --cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "ROUTEWATCH_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,

    /// The name the agents' certificates must carry, instead of the host
    /// part of TARGET: for connecting by IP address to an agent whose
    /// certificate names it by DNS name, or through a tunnel.
    #[arg(long, env = "ROUTEWATCH_TLS_SERVER_NAME", value_name = "NAME")]
    pub tls_server_name: Option<String>,
}

impl TlsArgs {
    /// Whether any TLS option was given (they mean nothing with
    /// --insecure).
    pub fn any(&self) -> bool {
        self.ca.is_some()
            || self.cert.is_some()
            || self.key.is_some()
            || self.tls_server_name.is_some()
    }
}
