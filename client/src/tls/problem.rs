//! What went wrong with TLS, in an operator's words.
//!
//! rustls reports precise causes ("UnknownIssuer", "AlertReceived(
//! CertificateRequired)"); an operator needs to know which side is wrong
//! and which flag fixes it. With TLS 1.3 the agent judges the client's
//! certificate only after the client considers the handshake done, so its
//! verdict (an alert) arrives with the first call, not at connect time:
//! both places use these words.

use std::io;

use rustls::{AlertDescription as A, CertificateError as C, Error as E};
use rustls_pki_types::{ServerName, UnixTime};

/// A connection that ended during the handshake, or a TLS error.
pub fn describe_io(e: &io::Error, server_name: &ServerName<'_>, client_cert: bool) -> String {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<E>()) {
        Some(tls) => describe(tls, Some(server_name), client_cert),
        None if e.kind() == io::ErrorKind::UnexpectedEof => NOT_TLS_OR_REFUSED.to_owned(),
        None => format!("TLS handshake failed: {e}"),
    }
}

/// A plaintext client's conclusion when the agent answers with TLS.
pub const NOT_PLAINTEXT: &str = "the agent speaks TLS: connect without --insecure (with --ca, and --cert and --key if it requires client certificates)";

const NOT_TLS: &str = "the agent is not speaking TLS (it runs with --insecure?): connect with --insecure, or give the agent --tls-cert and --tls-key";
const NOT_TLS_OR_REFUSED: &str = "the agent closed the connection during the TLS handshake: it may not be speaking TLS (then connect with --insecure), or it refused this client (it may be busy: too many connections from this address, see its --max-connections-per-peer)";

/// `e` in words; `server_name` is the name the agent's certificate was
/// checked against, when known.
pub fn describe(e: &E, server_name: Option<&ServerName<'_>>, client_cert: bool) -> String {
    match e {
        E::InvalidCertificate(c) => agent_certificate(c, server_name),
        E::AlertReceived(alert) => agent_alert(*alert, client_cert),
        E::InvalidMessage(_) | E::PeerSentOversizedRecord => NOT_TLS.to_owned(),
        E::NoApplicationProtocol => {
            "the agent does not offer gRPC (HTTP/2) over TLS: is a routewatch-agent listening there?".to_owned()
        }
        other => format!("TLS failed: {other}"),
    }
}

/// Why this client rejected the agent's certificate.
fn agent_certificate(c: &C, server_name: Option<&ServerName<'_>>) -> String {
    match c {
        C::UnknownIssuer | C::BadSignature => {
            "the agent's certificate is not issued by a CA this client trusts (unknown CA): pass the CA that issued it with --ca".to_owned()
        }
        C::Expired => "the agent's certificate has expired: renew it (the agent takes a renewed one without a restart)".to_owned(),
        C::ExpiredContext { time, not_after } => format!(
            "the agent's certificate expired at {} (now {}): renew it (the agent takes a renewed one without a restart)",
            when(*not_after),
            when(*time)
        ),
        C::NotValidYet | C::NotValidYetContext { .. } => {
            "the agent's certificate is not valid yet: check the clocks of both hosts".to_owned()
        }
        C::NotValidForName => name_mismatch(server_name, &[]),
        C::NotValidForNameContext { expected, presented } => {
            name_mismatch(Some(expected), presented)
        }
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "the agent's certificate is not meant for TLS servers (its extended key usage lacks serverAuth)".to_owned()
        }
        other => format!("the agent's certificate was rejected: {other:?}"),
    }
}

fn name_mismatch(expected: Option<&ServerName<'_>>, presented: &[String]) -> String {
    let expected = expected.map_or_else(
        || "the name connected to".to_owned(),
        |n| n.to_str().into_owned(),
    );
    let names = if presented.is_empty() {
        String::new()
    } else {
        let presented: Vec<&str> = presented.iter().map(|p| bare_name(p)).collect();
        format!("; it names {}", presented.join(", "))
    };
    format!(
        "the agent's certificate is not valid for {expected} (name mismatch{names}): connect by a name it carries, or set --tls-server-name"
    )
}

/// What the agent's alert says about this client.
fn agent_alert(alert: A, client_cert: bool) -> String {
    match alert {
        A::CertificateRequired => "the agent requires a client certificate (it runs with --client-ca): pass --cert and --key".to_owned(),
        A::HandshakeFailure if !client_cert => {
            "the agent refused the handshake; it probably requires a client certificate: pass --cert and --key".to_owned()
        }
        // A CA of the same name but another key fails the signature check:
        // also a certificate from the wrong CA.
        A::UnknownCA | A::DecryptError => format!(
            "the agent does not trust this client's certificate ({}): --cert must be issued by the CA the agent was given with --client-ca",
            if alert == A::UnknownCA { "unknown CA" } else { "its signature does not verify against the agent's CA" }
        ),
        A::CertificateExpired => "the agent rejected this client's certificate: it has expired (renew --cert)".to_owned(),
        A::BadCertificate | A::CertificateUnknown | A::UnsupportedCertificate => format!(
            "the agent rejected this client's certificate ({alert:?}): --cert must be a client certificate (extended key usage clientAuth) from the agent's --client-ca"
        ),
        other => format!("the agent ended the TLS session ({other:?})"),
    }
}

/// `DnsName("a.example")` or `IpAddress(10.0.0.1)`, as rustls lists a
/// certificate's names, without the wrapping.
fn bare_name(presented: &str) -> &str {
    presented
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .map_or(presented, |inner| inner.trim_matches('"'))
}

fn when(t: UnixTime) -> String {
    let secs = i64::try_from(t.as_secs()).unwrap_or(i64::MAX);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{secs} (Unix time)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_mismatch_lists_the_names_the_certificate_carries() {
        let expected = ServerName::try_from("10.0.0.1").unwrap();
        let e = E::InvalidCertificate(C::NotValidForNameContext {
            expected,
            presented: vec![
                "DnsName(\"host1.example.net\")".into(),
                "IpAddress(10.0.0.2)".into(),
            ],
        });
        assert_eq!(
            describe(&e, None, false),
            "the agent's certificate is not valid for 10.0.0.1 (name mismatch; it names host1.example.net, 10.0.0.2): connect by a name it carries, or set --tls-server-name"
        );
    }

    #[test]
    fn the_agents_alerts_say_which_flag_to_fix() {
        let alert = |a, cert| describe(&E::AlertReceived(a), None, cert);
        assert!(alert(A::CertificateRequired, false).contains("pass --cert and --key"));
        assert!(alert(A::UnknownCA, true).contains("--client-ca"));
        assert!(alert(A::DecryptError, true).contains("--client-ca"));
        assert!(alert(A::CertificateExpired, true).contains("expired"));
    }

    #[test]
    fn expiry_is_told_with_dates() {
        let e = E::InvalidCertificate(C::ExpiredContext {
            time: UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_800_000_000)),
            not_after: UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_700_000_000)),
        });
        let text = describe(&e, None, false);
        assert!(
            text.contains("expired at 2023-11-14T22:13:20Z (now 2027-01-15T08:00:00Z)"),
            "{text}"
        );
    }
}
