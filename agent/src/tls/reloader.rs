//! Certificate rotation without a restart.
//!
//! cert-manager and Kubernetes replace the files in place, so the reloader
//! reads them every few seconds (and at once on SIGHUP) and compares their
//! contents with what is in use. Usable new material goes to new
//! connections; open connections, and the streams on them, keep the
//! material they were made with. Unusable new files are reported once per
//! distinct content, counted, and ignored: the agent keeps serving with the
//! previous material rather than failing its consumers.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::AgentError;
use crate::tls::material::{TlsContents, TlsFiles};
use crate::tls::stats::TlsStats;

/// Watches the TLS files and publishes each usable new configuration.
pub struct Reloader {
    files: TlsFiles,
    tx: watch::Sender<Arc<ServerConfig>>,
    /// The contents last looked at, usable or not.
    seen: u128,
    stats: Arc<TlsStats>,
}

impl Reloader {
    /// Loads the files once; the agent does not start with unusable ones.
    pub fn load(
        files: TlsFiles,
        stats: Arc<TlsStats>,
    ) -> Result<(Reloader, watch::Receiver<Arc<ServerConfig>>), AgentError> {
        let contents = files.read()?;
        let config = files.server_config(&contents)?;
        log_loaded(&files, &contents, "TLS material loaded");
        let (tx, rx) = watch::channel(config);
        let reloader = Reloader {
            seen: contents.fingerprint(),
            files,
            tx,
            stats,
        };
        Ok((reloader, rx))
    }

    /// Checks the files every `interval` and on SIGHUP until `shutdown`.
    pub async fn run(mut self, interval: Duration, shutdown: CancellationToken) {
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot handle SIGHUP; TLS files are still checked every {}s", interval.as_secs());
                None
            }
        };
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            let forced = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => false,
                Some(()) = async { hangup.as_mut()?.recv().await } => true,
            };
            self.check(forced);
        }
    }

    /// Takes new usable material into use. `forced` (SIGHUP) reloads and
    /// reports even unchanged files.
    pub fn check(&mut self, forced: bool) {
        let read = self.files.read();
        let seen = match &read {
            Ok(contents) => contents.fingerprint(),
            // An unreadable file (mid-rename, deleted) is a state too: it is
            // reported once, not every few seconds.
            Err(e) => xxhash_rust::xxh3::xxh3_128(e.to_string().as_bytes()),
        };
        if seen == self.seen && !forced {
            return;
        }
        self.seen = seen;
        let config = read.and_then(|contents| {
            let config = self.files.server_config(&contents)?;
            Ok((contents, config))
        });
        match config {
            Ok((contents, config)) => {
                self.tx.send_replace(config);
                self.stats.reloads.fetch_add(1, Ordering::Relaxed);
                log_loaded(
                    &self.files,
                    &contents,
                    "TLS material reloaded: new connections use it, open streams go on",
                );
            }
            Err(e) => {
                self.stats.reload_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    "new TLS material is unusable, still serving the previous certificate, key and CA: {e}"
                );
            }
        }
    }
}

fn log_loaded(files: &TlsFiles, contents: &TlsContents, what: &str) {
    let mutual = files.client_ca.is_some();
    match contents.summary() {
        Some(s) => tracing::info!(
            subject = %s.subject,
            names = %s.names.join(","),
            not_after = %s.not_after,
            mutual,
            "{what}"
        ),
        None => tracing::info!(mutual, "{what}"),
    }
}
