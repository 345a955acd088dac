//! Connections to one agent, for tonic: TCP through hyper-util's connector
//! (connect timeout, keepalive), then a rustls handshake unless
//! `--insecure`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;

use crate::tls::connection::{Connection, Verdict};
use crate::tls::problem::describe_io;
use crate::tls::security::{Security, TlsSettings};
use crate::ClientError;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Connects to one agent. A failed handshake is a [`ClientError::Tls`]
/// that says what went wrong, inside tonic's transport error; later
/// failures leave their reason in [`Connector::verdict`].
#[derive(Clone)]
pub struct Connector {
    tcp: HttpConnector,
    tls: Option<Tls>,
    target: String,
    verdict: Verdict,
}

#[derive(Clone)]
struct Tls {
    /// Asked for its configuration at each connection (the files may
    /// have been renewed).
    settings: Arc<TlsSettings>,
    server_name: ServerName<'static>,
    client_cert: bool,
}

impl Connector {
    /// For `target` (`HOST:PORT`); with TLS its certificate must carry
    /// `--tls-server-name`, or else HOST.
    pub fn new(
        security: &Security,
        target: &str,
        tcp: HttpConnector,
    ) -> Result<Connector, ClientError> {
        let tls = match security {
            Security::Plaintext => None,
            Security::Tls(settings) => {
                let server_name = match &settings.server_name {
                    Some(name) => name.clone(),
                    None => {
                        let host = target.rsplit_once(':').map_or(target, |(h, _)| h);
                        let host = host.trim_start_matches('[').trim_end_matches(']');
                        ServerName::try_from(host.to_owned()).map_err(|_| ClientError::TlsSetup(format!(
                            "{target}: {host:?} cannot be checked against a certificate; set --tls-server-name to the name the agent's certificate carries"
                        )))?
                    }
                };
                Some(Tls {
                    settings: settings.clone(),
                    server_name,
                    client_cert: settings.client_cert,
                })
            }
        };
        Ok(Connector {
            tcp,
            tls,
            target: target.to_owned(),
            verdict: Verdict::default(),
        })
    }

    /// Why this connector's connections failed, once one has said so.
    pub fn verdict(&self) -> Verdict {
        self.verdict.clone()
    }
}

impl tower::Service<http::Uri> for Connector {
    type Response = TokioIo<Connection>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let tcp = self.tcp.call(uri);
        let tls = self.tls.clone();
        let target = self.target.clone();
        let verdict = self.verdict.clone();
        Box::pin(async move {
            let tcp = tcp.await?.into_inner();
            verdict.reached();
            let Some(tls) = tls else {
                return Ok(TokioIo::new(Connection::plain(tcp, verdict)));
            };
            let connector = tokio_rustls::TlsConnector::from(tls.settings.config());
            match connector.connect(tls.server_name.clone(), tcp).await {
                Ok(stream) => Ok(TokioIo::new(Connection::tls(
                    stream,
                    tls.client_cert,
                    verdict,
                ))),
                Err(e) => Err(Box::new(ClientError::Tls {
                    target,
                    problem: describe_io(&e, &tls.server_name, tls.client_cert),
                }) as BoxError),
            }
        })
    }
}
