//! The agent's ops port seen from a test: plain HTTP GETs from inside a
//! namespace, and `/metrics` parsed.

use std::time::Duration;

use crate::netns::Netns;
use crate::openmetrics::{self, Exposition};

/// How long [`http_get`] waits for the whole answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// `GET path` on `addr` (HOST:PORT) from inside `ns`, over HTTP/1.0 with
/// bash's /dev/tcp (no HTTP client needed): the status and the body.
pub fn http_get(ns: &Netns, addr: &str, path: &str) -> Result<(u16, String), String> {
    http_get_within(ns, addr, path, ANSWER_TIMEOUT)
}

/// Like [`http_get`], failing when the answer is not complete within
/// `timeout`.
pub fn http_get_within(
    ns: &Netns,
    addr: &str,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let (host, port) = addr.rsplit_once(':').ok_or("addr is HOST:PORT")?;
    let script = format!(
        "exec 3<>/dev/tcp/{host}/{port} || exit 7; printf 'GET {path} HTTP/1.0\\r\\nHost: {host}\\r\\n\\r\\n' >&3; cat <&3"
    );
    let secs = format!("{:.1}", timeout.as_secs_f64());
    let out = ns.output("timeout", &[secs.as_str(), "bash", "-c", &script]);
    if out.status.code() == Some(124) {
        return Err(format!(
            "GET http://{addr}{path} in {}: no answer within {timeout:?}",
            ns.name()
        ));
    }
    if !out.status.success() {
        return Err(format!(
            "GET http://{addr}{path} in {} failed ({}): {}",
            ns.name(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("GET {path}: no HTTP header in {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("GET {path}: no status in {head:?}"))?;
    Ok((status, body.to_owned()))
}

/// `/metrics` from the agent's ops port at `addr`, parsed (panics with the
/// text if it is not well-formed OpenMetrics).
pub fn scrape(ns: &Netns, addr: &str) -> Exposition {
    let (status, body) = http_get(ns, addr, "/metrics").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, 200, "GET /metrics: {body}");
    openmetrics::parse(&body).unwrap_or_else(|e| panic!("/metrics is not OpenMetrics: {e}\n{body}"))
}
