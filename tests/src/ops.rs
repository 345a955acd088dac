//! The agent's ops port seen from a test: plain HTTP GETs from inside a
//! namespace, and `/metrics` parsed.

use crate::netns::Netns;
use crate::openmetrics::{self, Exposition};

/// `GET path` on `addr` (HOST:PORT) from inside `ns`, over HTTP/1.0 with
/// bash's /dev/tcp (no HTTP client needed): the status and the body.
pub fn http_get(ns: &Netns, addr: &str, path: &str) -> Result<(u16, String), String> {
    let (host, port) = addr.rsplit_once(':').ok_or("addr is HOST:PORT")?;
    let script = format!(
        "exec 3<>/dev/tcp/{host}/{port} || exit 7; printf 'GET {path} HTTP/1.0\\r\\nHost: {host}\\r\\n\\r\\n' >&3; cat <&3"
    );
    let out = ns.output("bash", &["-c", &script]);
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
