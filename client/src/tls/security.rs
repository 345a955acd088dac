//! Plaintext or TLS, decided once per run from the flags, with the files
//! read up front: a wrong path fails before any connection is tried.

use std::path::Path;
use std::sync::Arc;

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
    pub config: Arc<ClientConfig>,
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

impl TlsSettings {
    pub fn from_args(args: &TlsArgs) -> Result<TlsSettings, ClientError> {
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
        let server_name = match &args.tls_server_name {
            Some(name) => Some(ServerName::try_from(name.clone()).map_err(|_| {
                setup(format!(
                    "--tls-server-name {name:?} is not a DNS name or IP address"
                ))
            })?),
            None => None,
        };
        Ok(TlsSettings {
            config: Arc::new(config),
            server_name,
            client_cert: args.cert.is_some(),
        })
    }
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
