//! Connecting: the URL checked before anything is dialled, and every
//! failure worded for the operator.

use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{Client, Config};
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_util::sync::CancellationToken;

use super::tls::{self, Mode};
use crate::store::{StoreError, StoreUrl};

/// The connection, its task spawned (it ends when the client is dropped or
/// the server goes away, and logs why), and a token cancelled when it ends.
pub(super) async fn connect(url: &str) -> Result<(Client, CancellationToken), StoreError> {
    let (mut config, tls) = config(url)?;
    let connector = tls.client_config().map_err(|problem| StoreError::Open {
        store: shown(url),
        problem,
    })?;
    // Who holds a target's lock is read from pg_stat_activity by the
    // collectors waiting for it (an application_name in the URL wins).
    if config.get_application_name().is_none() {
        config.application_name(application_name());
    }
    let (client, connection) = config
        .connect(MakeRustlsConnect::new(connector))
        .await
        .map_err(|e| {
            let chain = crate::error::chain(&e);
            let hint = tls_hint(&chain, tls.mode).unwrap_or(
                "is PostgreSQL running, and does the URL name an existing database and user?",
            );
            StoreError::Open {
                store: shown(url),
                problem: format!("cannot connect: {chain} ({hint})"),
            }
        })?;
    let store = shown(url);
    let ended = CancellationToken::new();
    let end = ended.clone();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::error!(
                store,
                error = %crate::error::chain(&e),
                "the connection to PostgreSQL ended; this collector's targets are free for others"
            );
        }
        end.cancel();
    });
    Ok((client, ended))
}

/// `routewatch on HOST (pid N)`: this process, as other collectors name
/// the holder of a target (PostgreSQL keeps 63 bytes of it).
pub(super) fn application_name() -> String {
    format!(
        "routewatch on {} (pid {})",
        routewatch_agent::info::kernel_hostname(),
        std::process::id()
    )
}

/// The URL parsed: tokio-postgres's part, and the TLS settings (see
/// [`tls`]). A Unix socket never uses TLS, as with libpq.
fn config(url: &str) -> Result<(Config, tls::TlsOptions), StoreError> {
    let bad = |problem: String| {
        StoreError::Url(format!(
            "{}: {problem} (expected postgres://USER:PASSWORD@HOST:PORT/DATABASE?OPTIONS)",
            shown(url)
        ))
    };
    let (rest, tls) = tls::split(url).map_err(bad)?;
    let mut config: Config = rest
        .parse()
        .map_err(|e: tokio_postgres::Error| bad(crate::error::chain(&e)))?;
    let local = !config.get_hosts().is_empty()
        && config
            .get_hosts()
            .iter()
            .all(|h| !matches!(h, Host::Tcp(_)));
    config.ssl_mode(if local {
        SslMode::Disable
    } else {
        tls.mode.ssl_mode()
    });
    Ok((config, tls))
}

/// What to do about a connection that failed in its TLS part.
fn tls_hint(chain: &str, mode: Mode) -> Option<&'static str> {
    Some(
        if chain.contains("UnknownIssuer") || chain.contains("BadSignature") {
            "the server's certificate is not signed by a CA of sslrootcert: name the CA that signed it"
        } else if chain.contains("NotValidForName") || chain.contains("not valid for name") {
            "the server's certificate does not carry the host name in the URL: connect by a name it \
         carries, or use sslmode=verify-ca to check the CA alone"
        } else if ["Expired", "expired", "NotValidYet", "not valid yet"]
            .iter()
            .any(|w| chain.contains(w))
        {
            "the server's certificate is outside its validity period"
        } else if chain.contains("server does not support TLS")
            || (mode == Mode::Require && chain.contains("TLS"))
        {
            "the server offers no TLS: turn ssl on in its configuration, or use sslmode=prefer"
        } else if [
            "CertificateRequired",
            "certificate required",
            "requires a valid client certificate",
        ]
        .iter()
        .any(|w| chain.contains(w))
        {
            "the server asks for a client certificate: add sslcert=... and sslkey=..."
        } else if chain.contains("certificate authentication failed")
            || chain.contains("no pg_hba.conf entry")
        {
            "the server refused this client: check sslcert (its common name must be the user) and pg_hba.conf"
        } else {
            return None;
        },
    )
}

/// The URL as shown to the operator: without its password.
pub(super) fn shown(url: &str) -> String {
    StoreUrl::Postgres(url.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> String {
        config(url).expect_err(url).to_string()
    }

    #[test]
    fn modes_map_onto_the_connection_and_sockets_never_use_tls() {
        for (mode, ssl) in [
            ("disable", SslMode::Disable),
            ("allow", SslMode::Prefer),
            ("prefer", SslMode::Prefer),
            ("require", SslMode::Require),
            ("verify-ca", SslMode::Require),
            ("verify-full", SslMode::Require),
        ] {
            let url = format!("postgres://rw:secret@db/rw?sslmode={mode}");
            let (config, _) = config(&url).unwrap();
            assert_eq!(config.get_ssl_mode(), ssl, "{mode}");
            let socket = format!("postgres://rw@%2Frun%2Fpostgresql/rw?sslmode={mode}");
            let (config, _) = config_of(&socket);
            assert_eq!(config.get_ssl_mode(), SslMode::Disable, "{socket}");
        }
        let (config, tls) = config("postgres://rw@localhost/rw").unwrap();
        assert_eq!(config.get_ssl_mode(), SslMode::Prefer);
        assert_eq!(tls.mode, Mode::Prefer);
    }

    fn config_of(url: &str) -> (Config, tls::TlsOptions) {
        config(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn an_unknown_mode_is_refused_in_words() {
        let err = refused("postgres://rw:secret@db/rw?sslmode=yes");
        assert!(err.contains("sslmode=yes is not a mode"), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn a_malformed_url_says_what_is_expected() {
        let err = refused("postgres://rw:secret@db/rw?nosuchoption=1");
        assert!(
            err.starts_with("bad --store: postgres://rw:***@db/rw"),
            "{err}"
        );
        assert!(err.contains("expected postgres://"), "{err}");
    }
}
