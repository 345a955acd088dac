//! Plaintext or TLS, decided once per run from the flags, with the files
//! read up front: a wrong path fails before any connection is tried.
//!
//! A long-running client (a `tail`, a collector) outlives its certificate:
//! the files are checked again for every new connection and re-read when
//! they changed, so a renewed certificate is used without a restart. Files
//! that changed but cannot be used leave the last good ones in use, with a
//! warning.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::tls::args::TlsArgs;
use crate::ClientError;

/// How remote targets are reached.
#[derive(Debug, Clone)]
pub enum Security {
    /// `--insecure`.
    Plaintext,
    Tls(Arc<TlsSettings>),
}

/// A client TLS configuration for every target of this run.
#[derive(Debug)]
pub struct TlsSettings {
    /// Where the files are, to check and re-read them.
    args: TlsArgs,
    /// The configuration in use and the state of the files it was made of.
    loaded: Mutex<(Arc<ClientConfig>, Stamps)>,
    /// `--tls-server-name`, else each target's host.
    pub server_name: Option<ServerName<'static>>,
    /// Whether a client certificate is configured (to tell "the agent wants
    /// one" from "the agent refused ours").
    pub client_cert: bool,
}

impl Security {
    pub fn from_args(insecure: bool, args: &TlsArgs) -> Result<Security, ClientError> {
        if insecure {
            if args.any() {
                return Err(ClientError::TlsSetup(
                    "--insecure connects in plaintext, so --ca, --cert, --key and --tls-server-name would be ignored: drop one or the other".to_owned(),
                ));
            }
            return Ok(Security::Plaintext);
        }
        Ok(Security::Tls(Arc::new(TlsSettings::from_args(args)?)))
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Security::Tls(_))
    }
}

/// Modification time and length of each file given (`None`: unreadable).
type Stamps = Vec<Option<(SystemTime, u64)>>;

fn stamps(args: &TlsArgs) -> Stamps {
    [&args.ca, &args.cert, &args.key]
        .into_iter()
        .flatten()
        .map(|path| {
            let meta = std::fs::metadata(path).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}

impl TlsSettings {
    pub fn from_args(args: &TlsArgs) -> Result<TlsSettings, ClientError> {
        let stamped = stamps(args);
        let config = Arc::new(client_config(args)?);
        let server_name = match &args.tls_server_name {
            Some(name) => Some(ServerName::try_from(name.clone()).map_err(|_| {
                setup(format!(
                    "--tls-server-name {name:?} is not a DNS name or IP address"
                ))
            })?),
            None => None,
        };
        Ok(TlsSettings {
            args: args.clone(),
            loaded: Mutex::new((config, stamped)),
            server_name,
            client_cert: args.cert.is_some(),
        })
    }

    /// The configuration for a new connection: made again from the files
    /// if one of them changed since they were read.
    pub fn config(&self) -> Arc<ClientConfig> {
        let now = stamps(&self.args);
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if loaded.1 != now {
            // Once per change, whether or not the new files are usable.
            loaded.1 = now;
            match client_config(&self.args) {
                Ok(config) => {
                    tracing::warn!("TLS files changed: new connections use them");
                    loaded.0 = Arc::new(config);
                }
                Err(e) => tracing::warn!(
                    "TLS files changed but cannot be used, new connections keep the previous ones: {e}"
                ),
            }
        }
        loaded.0.clone()
    }
}

/// The client configuration the files of `args` make.
fn client_config(args: &TlsArgs) -> Result<ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match &args.ca {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for ca in certificates("--ca", path)? {
                roots.add(ca).map_err(|e| {
                    setup(format!(
                        "--ca {} holds a certificate that cannot be a trust anchor: {e}",
                        path.display()
                    ))
                })?;
            }
            roots
        }
        None => system_roots()?,
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| setup(format!("cannot set up TLS: {e}")))?
        .with_root_certificates(roots);
    let mut config = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => {
            let chain = certificates("--cert", cert)?;
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                setup(format!("--key {} holds no usable private key (expected PEM \"BEGIN PRIVATE KEY\"): {e}", key.display()))
            })?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| match e {
                    rustls::Error::InconsistentKeys(_) => setup(format!(
                        "--key {} does not match the certificate in --cert {}",
                        key.display(),
                        cert.display()
                    )),
                    other => setup(format!("--cert and --key cannot be used: {other}")),
                })?
        }
        (Some(_), None) => {
            return Err(setup(
                "--cert needs --key (the certificate's private key)".to_owned(),
            ))
        }
        (None, Some(_)) => {
            return Err(setup(
                "--key needs --cert (the certificate it belongs to)".to_owned(),
            ))
        }
        (None, None) => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

fn setup(problem: String) -> ClientError {
    ClientError::TlsSetup(problem)
}

fn certificates(flag: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let pem = std::fs::read(path)
        .map_err(|e| setup(format!("cannot read {flag} {}: {e}", path.display())))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| setup(format!("{flag} {} is not valid PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(setup(format!(
            "{flag} {} holds no certificate (expected PEM \"BEGIN CERTIFICATE\")",
            path.display()
        )));
    }
    Ok(certs)
}

/// The system's trust store, for agents with publicly trusted certificates.
fn system_roots() -> Result<RootCertStore, ClientError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(setup(
            "no --ca given and the system has no trusted CA certificates: pass --ca with the CA that issued the agents' certificates (or --insecure for plaintext agents)".to_owned(),
        ));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_pem(name: &str) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn changed_files_are_read_again_and_unusable_ones_keep_the_last_good() {
        let dir = std::env::temp_dir().join(format!("routewatch-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, ca_pem("first")).unwrap();
        let args = TlsArgs {
            ca: Some(ca.clone()),
            ..Default::default()
        };
        let settings = TlsSettings::from_args(&args).unwrap();
        let first = settings.config();
        assert!(Arc::ptr_eq(&first, &settings.config()), "unchanged: kept");
        std::fs::write(&ca, "not a certificate\n").unwrap();
        assert!(
            Arc::ptr_eq(&first, &settings.config()),
            "unusable: the last good one stays"
        );
        std::fs::write(&ca, ca_pem("second")).unwrap();
        let second = settings.config();
        assert!(!Arc::ptr_eq(&first, &second), "renewed: read again");
        assert!(Arc::ptr_eq(&second, &settings.config()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
