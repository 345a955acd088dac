//! Connecting: the URL checked before anything is dialled, and every
//! failure worded for the operator.

use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, NoTls};

use crate::store::{StoreError, StoreUrl};

/// The connection, its task spawned (it ends when the client is dropped or
/// the server goes away, and logs why).
pub(super) async fn connect(url: &str) -> Result<Client, StoreError> {
    let mut config = config(url)?;
    // Who holds a target's lock is read from pg_stat_activity by the
    // collectors waiting for it (an application_name in the URL wins).
    if config.get_application_name().is_none() {
        config.application_name(application_name());
    }
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| StoreError::Open {
            store: shown(url),
            problem: format!(
                "cannot connect: {} (is PostgreSQL running, and does the URL name an existing database and user?)",
                crate::error::chain(&e)
            ),
        })?;
    let store = shown(url);
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::error!(
                store,
                error = %crate::error::chain(&e),
                "the connection to PostgreSQL ended; this collector's targets are free for others"
            );
        }
    });
    Ok(client)
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

/// The URL parsed, refused when it asks for TLS.
fn config(url: &str) -> Result<Config, StoreError> {
    // verify-ca and verify-full do not even parse without a TLS
    // implementation, so the mode is read from the URL itself first.
    let mode = url
        .split_once('?')
        .into_iter()
        .flat_map(|(_, query)| query.split('&'))
        .filter_map(|pair| pair.strip_prefix("sslmode="))
        .next_back();
    if let Some(mode @ ("require" | "verify-ca" | "verify-full")) = mode {
        return Err(no_tls(url, mode));
    }
    let config: Config = url.parse().map_err(|e: tokio_postgres::Error| {
        StoreError::Url(format!(
            "{}: {} (expected postgres://USER:PASSWORD@HOST:PORT/DATABASE?OPTIONS)",
            shown(url),
            crate::error::chain(&e)
        ))
    })?;
    if config.get_ssl_mode() == SslMode::Require {
        return Err(no_tls(url, "require"));
    }
    Ok(config)
}

fn no_tls(url: &str, mode: &str) -> StoreError {
    StoreError::Open {
        store: shown(url),
        problem: format!(
            "sslmode={mode} asks for TLS, but routewatch connects to PostgreSQL without TLS: \
             use a local socket (?host=/run/postgresql), a loopback address, or sslmode=disable or sslmode=prefer"
        ),
    }
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
    fn urls_that_ask_for_tls_are_refused_in_words() {
        for mode in ["require", "verify-ca", "verify-full"] {
            let err = refused(&format!("postgres://rw:secret@db/rw?sslmode={mode}"));
            assert!(
                err.contains(&format!("sslmode={mode} asks for TLS")),
                "{err}"
            );
            assert!(err.contains("sslmode=disable"), "{err}");
            assert!(!err.contains("secret"), "{err}");
        }
        for mode in ["disable", "prefer"] {
            let url = format!("postgres://rw@127.0.0.1/rw?sslmode={mode}");
            assert!(config(&url).is_ok(), "{url}");
        }
        assert!(config("postgres://rw@localhost/rw").is_ok());
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
