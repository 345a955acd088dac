//! Who may read the pages. They show a network's insides, so anything but
//! loopback needs TLS and an authenticated client, and a command line that
//! would expose them is refused with the flags that fix it.

use std::net::SocketAddr;
use std::path::Path;

use routewatch_agent::tls::TlsFiles;

use super::args::Web;
use crate::ClientError;

/// The shortest token accepted: anything shorter is guessable.
pub const MIN_TOKEN_LEN: usize = 16;

/// How the server admits clients.
#[derive(Debug, Clone)]
pub struct Access {
    /// TLS with these files (mutual TLS when they name a client CA).
    pub tls: Option<TlsFiles>,
    /// Identities a client certificate must carry one of (empty: any
    /// certificate the client CA issued).
    pub allow_clients: Vec<String>,
    /// The bearer token every request must carry.
    pub token: Option<String>,
}

impl Access {
    /// What `args` asks for, or why it would expose the pages.
    pub fn from_args(args: &Web) -> Result<Access, ClientError> {
        let tls_asked = args.tls.tls_cert.is_some()
            || args.tls.tls_key.is_some()
            || args.tls.client_ca.is_some()
            || !args.tls.allow_clients.is_empty();
        let tls = if tls_asked {
            args.tls
                .files(false)
                .map_err(|e| ClientError::Usage(e.to_string()))?
        } else {
            None
        };
        let token = match &args.token_file {
            Some(path) => Some(read_token(path)?),
            None => None,
        };
        let access = Access {
            tls,
            allow_clients: args
                .tls
                .allow_clients
                .iter()
                .map(|id| id.trim().to_owned())
                .collect(),
            token,
        };
        access.check(args.listen)?;
        Ok(access)
    }

    /// Refuses a non-loopback `listen` without TLS and client
    /// authentication.
    pub fn check(&self, listen: SocketAddr) -> Result<(), ClientError> {
        if listen.ip().is_loopback() {
            return Ok(());
        }
        let Some(files) = &self.tls else {
            return Err(ClientError::Usage(format!(
                "--listen {listen} is not a loopback address, and the pages show the network's insides: \
                 serve them with TLS (--tls-cert FILE --tls-key FILE) and authenticate clients with mutual TLS \
                 (--client-ca FILE, optionally --allow-client ID) or a bearer token (--token-file FILE); \
                 or listen on 127.0.0.1 or [::1]"
            )));
        };
        if files.client_ca.is_none() && self.token.is_none() {
            return Err(ClientError::Usage(format!(
                "--listen {listen} is not a loopback address: besides TLS, clients must prove who they are: \
                 give --client-ca FILE (mutual TLS, optionally with --allow-client ID) or --token-file FILE (a bearer token)"
            )));
        }
        Ok(())
    }
}

/// The token in `path`, refused when empty or short.
fn read_token(path: &Path) -> Result<String, ClientError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ClientError::Usage(format!(
            "--token-file {}: cannot read it: {e}",
            path.display()
        ))
    })?;
    let token = text.trim();
    if token.len() < MIN_TOKEN_LEN || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ClientError::Usage(format!(
            "--token-file {}: the token must be one word of at least {MIN_TOKEN_LEN} characters \
             (for example: head -c 32 /dev/urandom | base64 > {})",
            path.display(),
            path.display()
        )));
    }
    Ok(token.to_owned())
}

/// Whether `given` is `token`, in time that does not depend on where they
/// differ.
pub fn token_matches(given: &str, token: &str) -> bool {
    let (a, b) = (given.as_bytes(), token.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Line {
        #[command(flatten)]
        web: Web,
    }

    fn web(args: &[&str]) -> Web {
        let mut argv = vec!["web"];
        argv.extend(args);
        Line::try_parse_from(argv).unwrap().web
    }

    fn refusal(args: &[&str]) -> String {
        Access::from_args(&web(args)).unwrap_err().to_string()
    }

    fn token_file(contents: &str) -> tempfile_path::TempPath {
        tempfile_path::write(contents)
    }

    /// A file removed when dropped.
    mod tempfile_path {
        pub struct TempPath(pub std::path::PathBuf);
        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
        pub fn write(contents: &str) -> TempPath {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "routewatch-web-token-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::write(&path, contents).unwrap();
            TempPath(path)
        }
    }

    #[test]
    fn web_loopback_needs_nothing() {
        for listen in ["127.0.0.1:0", "[::1]:8080"] {
            let access = Access::from_args(&web(&["--listen", listen])).unwrap();
            assert!(access.tls.is_none() && access.token.is_none());
        }
    }

    #[test]
    fn web_elsewhere_without_tls_is_refused_with_the_flags_to_pass() {
        let e = refusal(&["--listen", "0.0.0.0:8080"]);
        assert!(e.contains("not a loopback address"), "{e}");
        for flag in [
            "--tls-cert",
            "--tls-key",
            "--client-ca",
            "--token-file",
            "127.0.0.1",
        ] {
            assert!(e.contains(flag), "{flag}: {e}");
        }
        let token = token_file("0123456789abcdef0123");
        let e = refusal(&[
            "--listen",
            "0.0.0.0:8080",
            "--token-file",
            token.0.to_str().unwrap(),
        ]);
        assert!(e.contains("--tls-cert FILE --tls-key FILE"), "{e}");
    }

    #[test]
    fn web_tls_elsewhere_without_client_authentication_is_refused() {
        let e = refusal(&[
            "--listen",
            "192.0.2.1:8443",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ]);
        assert!(
            e.contains("--client-ca FILE") && e.contains("--token-file FILE"),
            "{e}"
        );
        let token = token_file("0123456789abcdef0123\n");
        let access = Access::from_args(&web(&[
            "--listen",
            "192.0.2.1:8443",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--token-file",
            token.0.to_str().unwrap(),
        ]))
        .unwrap();
        assert_eq!(access.token.as_deref(), Some("0123456789abcdef0123"));
        let access = Access::from_args(&web(&[
            "--listen",
            "192.0.2.1:8443",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--client-ca",
            "ca.pem",
            "--allow-client",
            "ops.example.net",
        ]))
        .unwrap();
        assert_eq!(access.allow_clients, ["ops.example.net"]);
    }

    #[test]
    fn web_tls_flags_that_do_not_fit_are_named() {
        let e = refusal(&["--tls-cert", "c.pem"]);
        assert!(e.contains("--tls-cert needs --tls-key"), "{e}");
        let e = refusal(&[
            "--allow-client",
            "x",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ]);
        assert!(e.contains("--allow-client needs --client-ca"), "{e}");
    }

    #[test]
    fn web_short_or_missing_tokens_are_refused() {
        let short = token_file("short\n");
        let e = refusal(&["--token-file", short.0.to_str().unwrap()]);
        assert!(e.contains("at least 16 characters"), "{e}");
        let e = refusal(&["--token-file", "/nonexistent/routewatch-token"]);
        assert!(e.contains("cannot read it"), "{e}");
    }

    #[test]
    fn web_tokens_compare_whole() {
        assert!(token_matches("0123456789abcdef", "0123456789abcdef"));
        assert!(!token_matches("0123456789abcdeX", "0123456789abcdef"));
        assert!(!token_matches("0123456789abcde", "0123456789abcdef"));
    }
}
