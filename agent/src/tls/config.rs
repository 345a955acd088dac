//! The agent's TLS flags. Every field's doc comment is its `--help` text.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::error::AgentError;
use crate::tls::material::TlsFiles;

/// How the agent secures its gRPC port.
#[derive(Debug, Clone, Args)]
pub struct TlsConfig {
    /// Certificate chain the agent presents (PEM: its own certificate
    /// first, then any intermediates). Together with --tls-key this turns
    /// TLS on; without both the agent refuses to start unless --insecure is
    /// given. Re-read when the file changes (see --tls-reload-secs) and on
    /// SIGHUP: new connections get the new certificate, open streams go on.
    #[arg(long, env = "ROUTEWATCH_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// Private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1). Re-read
    /// together with the certificate.
    #[arg(long, env = "ROUTEWATCH_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// CA certificates (PEM) that issue client certificates. Turns on
    /// mutual TLS: every client must present a certificate issued by one of
    /// them, or the handshake fails. Re-read like --tls-cert, so a CA can be
    /// rotated without a restart.
    #[arg(long, env = "ROUTEWATCH_CLIENT_CA", value_name = "FILE")]
    pub client_ca: Option<PathBuf>,

    /// Admit only clients whose certificate carries this identity as a DNS
    /// or URI subject alternative name, for example
    /// `collector.example.net` or `spiffe://example.net/ns/ops/sa/collector`.
    /// Repeat the flag (or separate with commas) to admit several; any other
    /// client gets PERMISSION_DENIED on every call. Needs --client-ca.
    /// Without it, every client with a certificate from --client-ca is
    /// admitted.
    #[arg(
        long = "allow-client",
        env = "ROUTEWATCH_ALLOW_CLIENT",
        value_name = "ID",
        value_delimiter = ','
    )]
    pub allow_clients: Vec<String>,

    /// Seconds between checks of --tls-cert, --tls-key and --client-ca for
    /// new contents (cert-manager and Kubernetes replace them in place).
    /// Unusable new files (not PEM, a key that does not match the
    /// certificate) are reported once and the previous ones stay in use.
    #[arg(long, env = "ROUTEWATCH_TLS_RELOAD_SECS", default_value_t = 5)]
    pub tls_reload_secs: u64,

    /// Seconds a client has to complete the TLS handshake before its
    /// connection is closed, so that connections which never finish cannot
    /// pile up.
    #[arg(
        long,
        env = "ROUTEWATCH_TLS_HANDSHAKE_TIMEOUT_SECS",
        default_value_t = 10
    )]
    pub tls_handshake_timeout_secs: u64,
}

impl TlsConfig {
    /// The TLS files to serve with, `None` for plaintext; refuses
    /// combinations an operator did not mean.
    pub fn files(&self, insecure: bool) -> Result<Option<TlsFiles>, AgentError> {
        let bad = |problem: &str| Err(AgentError::TlsFlags(problem.to_owned()));
        let (cert, key) = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => (cert.clone(), key.clone()),
            (Some(_), None) => {
                return bad("--tls-cert needs --tls-key (the certificate's private key)")
            }
            (None, Some(_)) => {
                return bad("--tls-key needs --tls-cert (the certificate it belongs to)")
            }
            (None, None) => {
                if self.client_ca.is_some() || !self.allow_clients.is_empty() {
                    return bad("--client-ca and --allow-client need TLS: give --tls-cert and --tls-key too");
                }
                return if insecure {
                    Ok(None)
                } else {
                    Err(AgentError::TlsRequired)
                };
            }
        };
        if insecure {
            return bad("--insecure and --tls-cert contradict each other: drop --insecure to serve TLS, or the TLS flags to serve plaintext");
        }
        if !self.allow_clients.is_empty() && self.client_ca.is_none() {
            return bad("--allow-client needs --client-ca: client identities are only known when clients present certificates");
        }
        if let Some(id) = self.allow_clients.iter().find(|id| id.trim().is_empty()) {
            return bad(&format!("--allow-client {id:?} is empty: give a DNS name or a URI such as spiffe://example.net/collector"));
        }
        Ok(Some(TlsFiles {
            cert,
            key,
            client_ca: self.client_ca.clone(),
        }))
    }

    pub fn reload_interval(&self) -> Duration {
        Duration::from_secs(self.tls_reload_secs.max(1))
    }

    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.tls_handshake_timeout_secs.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(cert: bool, key: bool, ca: bool, allow: &[&str]) -> TlsConfig {
        TlsConfig {
            tls_cert: cert.then(|| "agent.pem".into()),
            tls_key: key.then(|| "agent-key.pem".into()),
            client_ca: ca.then(|| "ca.pem".into()),
            allow_clients: allow.iter().map(|s| s.to_string()).collect(),
            tls_reload_secs: 5,
            tls_handshake_timeout_secs: 10,
        }
    }

    fn refusal(config: TlsConfig, insecure: bool) -> String {
        config.files(insecure).unwrap_err().to_string()
    }

    #[test]
    fn no_tls_without_insecure_is_refused_with_what_to_do() {
        let e = refusal(config(false, false, false, &[]), false);
        assert!(
            e.contains("--tls-cert and --tls-key") && e.contains("--insecure"),
            "{e}"
        );
        assert!(config(false, false, false, &[])
            .files(true)
            .unwrap()
            .is_none());
    }

    #[test]
    fn flags_that_do_not_fit_together_are_named() {
        assert!(
            refusal(config(true, false, false, &[]), false).contains("--tls-cert needs --tls-key")
        );
        assert!(
            refusal(config(false, true, false, &[]), false).contains("--tls-key needs --tls-cert")
        );
        assert!(refusal(config(true, true, false, &[]), true).contains("--insecure and --tls-cert"));
        assert!(refusal(config(true, true, false, &["a"]), false)
            .contains("--allow-client needs --client-ca"));
        assert!(refusal(config(false, false, true, &[]), true).contains("need TLS"));
        assert!(refusal(config(true, true, true, &[" "]), false).contains("is empty"));
        let files = config(true, true, true, &["a"])
            .files(false)
            .unwrap()
            .unwrap();
        assert_eq!(files.client_ca, Some("ca.pem".into()));
    }
}
