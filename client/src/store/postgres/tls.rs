//! TLS to PostgreSQL, with libpq's words for it: `sslmode` (`disable`,
//! `allow`, `prefer`, `require`, `verify-ca`, `verify-full`),
//! `sslrootcert` (a PEM file of CA certificates, or `system` for the
//! system's store), and `sslcert`/`sslkey` (a client certificate and its
//! key, PEM). Through rustls with the ring provider, like every other TLS
//! connection routewatch makes.
//!
//! As with libpq:
//! - `prefer` (the default) and `allow` use TLS when the server offers it
//!   and check nothing; `require` insists on TLS, and checks the server's
//!   certificate against `sslrootcert` only when one is given (libpq does
//!   so when its root file exists);
//! - `verify-ca` checks that a CA of `sslrootcert` signed the server's
//!   certificate, `verify-full` also that the certificate names the host
//!   dialled;
//! - a Unix socket never uses TLS (PostgreSQL offers none there), whatever
//!   the mode.
//!
//! Unlike libpq there is no default file under `~/.postgresql/`: the
//! files are named in the URL, so that what a collector trusts is written
//! where it is configured.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use tokio_postgres::config::SslMode;

/// `sslmode`, as libpq reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Mode {
    fn parse(word: &str) -> Option<Mode> {
        Some(match word {
            "disable" => Mode::Disable,
            "allow" => Mode::Allow,
            "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            _ => return None,
        })
    }

    /// What the connection itself does (tokio-postgres knows three modes;
    /// the checks of the verify modes are the verifier's).
    pub fn ssl_mode(self) -> SslMode {
        match self {
            Mode::Disable => SslMode::Disable,
            Mode::Allow | Mode::Prefer => SslMode::Prefer,
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
        }
    }
}

/// The TLS settings of a store URL, taken out of it (the rest of the URL is
/// tokio-postgres's to parse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    pub mode: Mode,
    pub root_cert: Option<RootCert>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// `sslrootcert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    File(PathBuf),
    System,
}

/// The URL without its TLS parameters, and those parameters. Errors are
/// the operator's words.
pub fn split(url: &str) -> Result<(String, TlsOptions), String> {
    let mut options = TlsOptions {
        mode: Mode::Prefer,
        root_cert: None,
        client_cert: None,
        client_key: None,
    };
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), options));
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
        let value = || {
            percent_encoding::percent_decode_str(raw)
                .decode_utf8()
                .map(|v| v.into_owned())
                .map_err(|_| format!("{key}: not UTF-8 once decoded"))
        };
        match key {
            "sslmode" => {
                let word = value()?;
                options.mode = Mode::parse(&word).ok_or_else(|| {
                    format!(
                        "sslmode={word} is not a mode: use disable, allow, prefer, require, \
                         verify-ca or verify-full"
                    )
                })?;
            }
            "sslrootcert" => {
                let v = value()?;
                options.root_cert = Some(if v == "system" {
                    RootCert::System
                } else {
                    RootCert::File(v.into())
                });
            }
            "sslcert" => options.client_cert = Some(value()?.into()),
            "sslkey" => options.client_key = Some(value()?.into()),
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, options))
}

impl TlsOptions {
    /// The rustls configuration these options ask for.
    pub fn client_config(&self) -> Result<ClientConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verify = matches!(self.mode, Mode::VerifyCa | Mode::VerifyFull);
        let roots = match &self.root_cert {
            Some(root) => Some(load_roots(root)?),
            None if verify => {
                return Err(format!(
                    "sslmode={} checks the server's certificate against a CA: add \
                     sslrootcert=/path/to/ca.pem (the CA that signed the server's certificate) \
                     or sslrootcert=system (the system's CAs) to the URL",
                    self.mode_word()
                ))
            }
            None => None,
        };
        // The chain is checked when a root is given, except in the modes
        // that never check (prefer, allow); the name in verify-full only.
        let chain = match (roots, self.mode) {
            (Some(roots), mode) if mode != Mode::Prefer && mode != Mode::Allow => Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| format!("sslrootcert: {e}"))?,
            ),
            _ => None,
        };
        let verifier = Arc::new(Verifier {
            chain,
            name: self.mode == Mode::VerifyFull,
            provider: provider.clone(),
        });
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        match (&self.client_cert, &self.client_key) {
            (None, None) => Ok(builder.with_no_client_auth()),
            (Some(cert), Some(key)) => {
                let chain = load_certs(cert, "sslcert")?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("sslkey={}: no private key read: {e}", key.display()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("sslcert and sslkey do not go together: {e}"))
            }
            (Some(_), None) => {
                Err("sslcert is given without sslkey: add sslkey=/path/to/key.pem".into())
            }
            (None, Some(_)) => {
                Err("sslkey is given without sslcert: add sslcert=/path/to/cert.pem".into())
            }
        }
    }

    fn mode_word(&self) -> &'static str {
        match self.mode {
            Mode::Disable => "disable",
            Mode::Allow => "allow",
            Mode::Prefer => "prefer",
            Mode::Require => "require",
            Mode::VerifyCa => "verify-ca",
            Mode::VerifyFull => "verify-full",
        }
    }
}

fn load_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("{what}={}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{what}={}: no PEM certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}

fn load_roots(root: &RootCert) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match root {
        RootCert::File(path) => {
            for cert in load_certs(path, "sslrootcert")? {
                roots
                    .add(cert)
                    .map_err(|e| format!("sslrootcert={}: {e}", path.display()))?;
            }
        }
        RootCert::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(
                    "sslrootcert=system: the system's certificate store has no CA certificate \
                     (install ca-certificates, or name a file)"
                        .into(),
                );
            }
        }
    }
    Ok(roots)
}

/// The server's certificate as the mode asks: its chain against the roots
/// (`chain`), and its name too (`name`); neither in `prefer`, `allow`, or
/// `require` without a root. The handshake's signatures are always checked.
#[derive(Debug)]
struct Verifier {
    chain: Option<Arc<WebPkiServerVerifier>>,
    name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_the_url() {
        let (url, o) = split(
            "postgres://rw:pw@db:5432/rw?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem&sslcert=c.pem&sslkey=k.pem",
        )
        .unwrap();
        assert_eq!(url, "postgres://rw:pw@db:5432/rw?application_name=x");
        assert_eq!(o.mode, Mode::VerifyFull);
        assert_eq!(o.root_cert, Some(RootCert::File("/etc/ca.pem".into())));
        assert_eq!(o.client_cert, Some("c.pem".into()));
        assert_eq!(o.client_key, Some("k.pem".into()));

        let (url, o) = split("postgres://rw@db/rw").unwrap();
        assert_eq!(
            (url.as_str(), o.mode),
            ("postgres://rw@db/rw", Mode::Prefer)
        );
        let (url, o) = split("postgres://rw@db/rw?sslmode=require&sslrootcert=system").unwrap();
        assert_eq!(url, "postgres://rw@db/rw");
        assert_eq!(
            (o.mode, o.root_cert),
            (Mode::Require, Some(RootCert::System))
        );
    }

    #[test]
    fn bad_tls_parameters_say_what_to_write() {
        let err = split("postgres://rw@db/rw?sslmode=on").unwrap_err();
        assert!(err.contains("sslmode=on is not a mode"), "{err}");
        assert!(err.contains("verify-full"), "{err}");
        for mode in ["verify-ca", "verify-full"] {
            let (_, o) = split(&format!("postgres://rw@db/rw?sslmode={mode}")).unwrap();
            let err = o.client_config().unwrap_err();
            assert!(err.contains("add sslrootcert=/path/to/ca.pem"), "{err}");
        }
        let (_, o) = split("postgres://rw@db/rw?sslmode=require&sslcert=c.pem").unwrap();
        let err = o.client_config().unwrap_err();
        assert!(err.contains("without sslkey"), "{err}");
        let (_, o) =
            split("postgres://rw@db/rw?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem").unwrap();
        let err = o.client_config().unwrap_err();
        assert!(err.contains("sslrootcert=/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn modes_without_a_root_need_no_files() {
        for mode in ["disable", "allow", "prefer", "require"] {
            let (_, o) = split(&format!("postgres://rw@db/rw?sslmode={mode}")).unwrap();
            assert!(o.client_config().is_ok(), "{mode}");
        }
    }
}
