//! The TLS files and the server configuration they make.
//!
//! The files are read as bytes first and only then parsed, so that a change
//! is noticed by content (a Kubernetes secret volume swaps a symlink; a
//! file's mtime need not move) and a half-rotated set is never mistaken
//! for the one in use.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::AgentError;

/// The files TLS is made of.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Set for mutual TLS.
    pub client_ca: Option<PathBuf>,
}

/// What the files held at one reading.
pub struct TlsContents {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

/// A certificate's facts worth a log line.
#[derive(Debug, Clone)]
pub struct CertSummary {
    pub subject: String,
    pub names: Vec<String>,
    pub not_after: String,
}

impl TlsFiles {
    /// Reads every file.
    pub fn read(&self) -> Result<TlsContents, AgentError> {
        Ok(TlsContents {
            cert: read("--tls-cert", &self.cert)?,
            key: read("--tls-key", &self.key)?,
            client_ca: match &self.client_ca {
                Some(path) => Some(read("--client-ca", path)?),
                None => None,
            },
        })
    }

    /// A server configuration from `contents`, or why they cannot serve.
    pub fn server_config(&self, contents: &TlsContents) -> Result<Arc<ServerConfig>, AgentError> {
        let provider = Arc::new(crate::tls::provider());
        let chain = certificates("--tls-cert", &self.cert, &contents.cert)?;
        let key = PrivateKeyDer::from_pem_slice(&contents.key).map_err(|e| {
            bad(
                "--tls-key",
                &self.key,
                format!("holds no usable private key (expected PEM \"BEGIN PRIVATE KEY\", \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\"): {e}"),
            )
        })?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| AgentError::TlsMaterial(format!("cannot set up TLS: {e}")))?;
        let builder = match (&self.client_ca, &contents.client_ca) {
            (Some(path), Some(pem)) => {
                let mut roots = RootCertStore::empty();
                for ca in certificates("--client-ca", path, pem)? {
                    roots.add(ca).map_err(|e| {
                        bad(
                            "--client-ca",
                            path,
                            format!("holds a certificate that cannot be a trust anchor: {e}"),
                        )
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| {
                            bad(
                                "--client-ca",
                                path,
                                format!("cannot verify clients with it: {e}"),
                            )
                        })?;
                builder.with_client_cert_verifier(verifier)
            }
            _ => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => AgentError::TlsMaterial(format!(
                "--tls-key {} does not match the certificate in --tls-cert {} (were they replaced one at a time, or swapped with another pair's?)",
                self.key.display(),
                self.cert.display()
            )),
            other => bad("--tls-key", &self.key, format!("cannot be used with --tls-cert: {other}")),
        })?;
        // gRPC runs over HTTP/2 only; clients that insist on ALPN (grpc-go,
        // and so grpcurl) refuse a server that does not name it.
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

impl TlsContents {
    /// Identifies the contents, to notice a change without keeping a key's
    /// copy around.
    pub fn fingerprint(&self) -> u128 {
        let mut all = Vec::with_capacity(self.cert.len() + self.key.len() + 16);
        for part in [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()] {
            let part = part.map(Vec::as_slice).unwrap_or_default();
            all.extend_from_slice(&(part.len() as u64).to_le_bytes());
            all.extend_from_slice(part);
        }
        xxhash_rust::xxh3::xxh3_128(&all)
    }

    /// The agent's own certificate, for the log.
    pub fn summary(&self) -> Option<CertSummary> {
        let der = CertificateDer::pem_slice_iter(&self.cert).next()?.ok()?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
        let mut names = crate::tls::identity::san_names(&cert);
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            names.extend(san.value.general_names.iter().filter_map(|n| match n {
                x509_parser::extensions::GeneralName::IPAddress(ip) => ip_text(ip),
                _ => None,
            }));
        }
        Some(CertSummary {
            subject: cert.subject().to_string(),
            names,
            not_after: cert.validity().not_after.to_string(),
        })
    }
}

/// An IP address SAN's octets as text.
fn ip_text(octets: &[u8]) -> Option<String> {
    match octets.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(octets).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(octets).ok()?).to_string()),
        _ => None,
    }
}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, AgentError> {
    std::fs::read(path).map_err(|error| AgentError::TlsFile {
        flag,
        path: path.to_owned(),
        error,
    })
}

fn certificates(
    flag: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, AgentError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(flag, path, format!("is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad(
            flag,
            path,
            "holds no certificate (expected PEM \"BEGIN CERTIFICATE\")".to_owned(),
        ));
    }
    for cert in &certs {
        if let Err(e) = x509_parser::parse_x509_certificate(cert) {
            return Err(bad(
                flag,
                path,
                format!("holds a certificate that does not parse: {e}"),
            ));
        }
    }
    Ok(certs)
}

fn bad(flag: &str, path: &Path, problem: String) -> AgentError {
    AgentError::TlsMaterial(format!("{flag} {} {problem}", path.display()))
}

/// The one crypto provider: ring.
pub fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}
