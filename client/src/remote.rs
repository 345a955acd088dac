//! Calls to an agent over gRPC, on a connection that notices a dead path,
//! with TLS unless `--insecure`.
//!
//! A link that goes down silently (no RST, no FIN) leaves a TCP connection
//! that looks healthy forever while the agent has nothing to say. HTTP/2
//! pings, sent even while no call is active, find it within about
//! `PING_INTERVAL + PING_TIMEOUT`; TCP keepalive covers the connection below
//! them.

use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use http::uri::PathAndQuery;
use hyper_util::client::legacy::connect::HttpConnector;
use routewatch_proto::v1::route_watch_client::RouteWatchClient;
use routewatch_proto::v1::{AgentInfo, GetInfoRequest, SubscribeRequest, SubscribeResponse};
use routewatch_proto::{HOSTNAME_HEADER, IDENTITY_HEADER};
use tonic::client::Grpc;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Channel, Endpoint};
use tonic::GrpcMethod;

use crate::cli::Compression;
use crate::response_codec::{ResponseCodec, SUBSCRIBE};
use crate::tls::{Connector, Security, Verdict};
use crate::ClientError;

/// Largest response the client accepts; batches are far smaller.
const MAX_MESSAGE: usize = 64 << 20;
/// Largest HTTP/2 frame the client reads (the protocol's default is
/// 16 KiB): as large as an agent's default batch cap, so that a batch goes
/// out in one write instead of a write (and a packet) per 16 KiB, which is
/// about a tenth of an agent's CPU with many subscribers.
const MAX_FRAME: u32 = 1 << 20;
/// How long connecting, and then the agent's answer to the call, may take
/// (unless `--connect-timeout` says otherwise).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 ping period.
const PING_INTERVAL: Duration = Duration::from_secs(5);
/// How long a ping may go unanswered before the connection is dropped.
const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle time before TCP keepalive probes, and the time between probes.
const TCP_KEEPALIVE: Duration = Duration::from_secs(10);
const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const TCP_KEEPALIVE_RETRIES: u32 = 3;

/// The agent's responses, errors naming `addr`.
pub type Responses = BoxStream<'static, Result<SubscribeResponse, ClientError>>;

/// A started subscription.
pub struct Subscribed {
    /// The host name the agent reported (None from an agent that does not).
    pub hostname: Option<String>,
    /// The agent's identity, `AGENT_ID/NETNS` (None from an agent that
    /// does not say).
    pub identity: Option<String>,
    pub responses: Responses,
}

/// The response encodings `compression` accepts from `addr`, in order of
/// preference. `auto` asks an agent on this host for none: over loopback
/// compression only costs both sides CPU.
fn accepted(compression: Compression, addr: &str) -> &'static [CompressionEncoding] {
    match compression {
        Compression::Auto if is_loopback(addr) => &[],
        Compression::Auto => &[CompressionEncoding::Zstd, CompressionEncoding::Gzip],
        Compression::Zstd => &[CompressionEncoding::Zstd],
        Compression::Gzip => &[CompressionEncoding::Gzip],
        Compression::None => &[],
    }
}

/// Whether `addr` (`host:port`, `[v6]:port`, or a bare host) names this
/// host's loopback.
fn is_loopback(addr: &str) -> bool {
    let host = match addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => addr,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Connects to the agent at `addr` and starts `request`; connecting, and
/// then the agent's answer, may each take `timeout`.
pub async fn subscribe(
    addr: &str,
    request: SubscribeRequest,
    compression: Compression,
    security: &Security,
    timeout: Duration,
) -> Result<Subscribed, ClientError> {
    let (channel, verdict) = connect(addr, security, timeout).await?;
    let stream_err = {
        let addr = addr.to_owned();
        let verdict = verdict.clone();
        move |status| stream_error(&addr, status, &verdict)
    };
    // The generated client's call, with a codec that decodes faster.
    let mut grpc = Grpc::new(channel).max_decoding_message_size(MAX_MESSAGE);
    for encoding in accepted(compression, addr) {
        grpc = grpc.accept_compressed(*encoding);
    }
    let call = async {
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unknown(format!("Service was not ready: {e}")))?;
        let mut request = tonic::Request::new(request);
        request
            .extensions_mut()
            .insert(GrpcMethod::new("routewatch.v1.RouteWatch", "Subscribe"));
        let path = PathAndQuery::from_static(SUBSCRIBE);
        grpc.server_streaming(request, path, ResponseCodec).await
    };
    // The agent answers at once; an answer that does not come means a path
    // that died between connecting and calling.
    let response = tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| stream_err(no_answer("subscription", timeout)))?
        .map_err(&stream_err)?;
    let header = |name| {
        response
            .metadata()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
    };
    let (hostname, identity) = (header(HOSTNAME_HEADER), header(IDENTITY_HEADER));
    Ok(Subscribed {
        hostname,
        identity,
        responses: response
            .into_inner()
            .map(move |r| r.map_err(&stream_err))
            .boxed(),
    })
}

/// Asks the agent at `addr` about itself.
pub async fn get_info(
    addr: &str,
    security: &Security,
    timeout: Duration,
) -> Result<AgentInfo, ClientError> {
    let (channel, verdict) = connect(addr, security, timeout).await?;
    let stream_err = |status| stream_error(addr, status, &verdict);
    let mut client = RouteWatchClient::new(channel);
    let response = tokio::time::timeout(timeout, client.get_info(GetInfoRequest {}))
        .await
        .map_err(|_| stream_err(no_answer("information request", timeout)))?
        .map_err(stream_err)?;
    Ok(response.into_inner())
}

fn no_answer(what: &str, timeout: Duration) -> tonic::Status {
    tonic::Status::deadline_exceeded(format!(
        "connected, but no answer to the {what} within {}s: routewatch-agent may be busy, or the path to it failed",
        timeout.as_secs_f64()
    ))
}

/// A connection to `addr` that notices a dead path, with what its TLS
/// layer learns of failures.
async fn connect(
    addr: &str,
    security: &Security,
    timeout: Duration,
) -> Result<(Channel, Verdict), ClientError> {
    let connector = Connector::new(security, addr, tcp_connector(timeout))?;
    let verdict = connector.verdict();
    let connect_err = |source| connect_error(addr, source, &verdict);
    let scheme = if security.is_tls() { "https" } else { "http" };
    // tonic's own connect timeout and keepalive settings apply to its own
    // connector; ours (tcp_connector) carries the same values.
    let channel = Endpoint::from_shared(format!("{scheme}://{addr}"))
        .map_err(connect_err)?
        .connect_timeout(timeout)
        .http2_keep_alive_interval(PING_INTERVAL)
        .keep_alive_timeout(PING_TIMEOUT)
        .keep_alive_while_idle(true)
        .max_frame_size(MAX_FRAME)
        .connect_with_connector(connector)
        .await
        .map_err(connect_err)?;
    Ok((channel, verdict))
}

/// The TCP half of a TLS connection, set up as tonic sets up its own.
fn tcp_connector(timeout: Duration) -> HttpConnector {
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(timeout));
    tcp.set_keepalive(Some(TCP_KEEPALIVE));
    tcp.set_keepalive_interval(Some(TCP_KEEPALIVE_INTERVAL));
    tcp.set_keepalive_retries(Some(TCP_KEEPALIVE_RETRIES));
    tcp
}

/// A failure to connect, in the words of the connection when it had any.
fn connect_error(addr: &str, source: tonic::transport::Error, verdict: &Verdict) -> ClientError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&source);
    while let Some(e) = cause {
        if let Some(ClientError::Tls { target, problem }) = e.downcast_ref::<ClientError>() {
            return ClientError::Tls {
                target: target.clone(),
                problem: problem.clone(),
            };
        }
        cause = e.source();
    }
    told(addr, verdict).unwrap_or_else(|| ClientError::Connect {
        target: addr.to_owned(),
        hint: connect_hint(&source, verdict.was_reached()),
        source,
    })
}

/// What a failure to connect suggests. A refused connection means nothing
/// listens; a timeout after the TCP connection was made means something
/// listens but did not answer (an agent out of connections or file
/// descriptors); a timeout before it, a host that cannot be reached or an
/// accept queue that is full.
fn connect_hint(source: &(dyn std::error::Error + 'static), reached: bool) -> &'static str {
    let mut cause = Some(source);
    let mut timed_out = false;
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return NOTHING_LISTENS,
                std::io::ErrorKind::TimedOut => timed_out = true,
                _ => {}
            }
        }
        if e.downcast_ref::<tokio::time::error::Elapsed>().is_some()
            || e.to_string().contains("timed out")
        {
            timed_out = true;
        }
        cause = e.source();
    }
    match (timed_out, reached) {
        (_, true) => NO_ANSWER,
        (true, false) => NOT_ACCEPTED,
        (false, false) => "is routewatch-agent running there and listening on that port?",
    }
}

const NOTHING_LISTENS: &str =
    "nothing listens on that port: is routewatch-agent running there, and on that port?";
const NO_ANSWER: &str = "the port took the connection but no answer came: routewatch-agent may be busy (at its connection or file-descriptor limit; see its log and its routewatch_accept_errors_total and routewatch_connections_refused_per_peer_total), or something else listens there";
const NOT_ACCEPTED: &str = "the connection was not taken in time: the host may be down or unreachable, a firewall may drop the packets, or routewatch-agent may be too busy to accept connections";

/// A failed call. With TLS 1.3 the agent's verdict on this client's
/// certificate arrives only now, as an alert that ends the connection.
fn stream_error(addr: &str, status: tonic::Status, verdict: &Verdict) -> ClientError {
    told(addr, verdict).unwrap_or_else(|| ClientError::Stream {
        target: addr.to_owned(),
        status,
    })
}

/// What the connection said about its failure, if anything.
fn told(addr: &str, verdict: &Verdict) -> Option<ClientError> {
    verdict.get().map(|problem| ClientError::Tls {
        target: addr.to_owned(),
        problem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_hints_tell_nothing_listening_from_no_answer() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(connect_hint(&refused, false), NOTHING_LISTENS);
        let timed_out = std::io::Error::new(std::io::ErrorKind::TimedOut, "deadline has elapsed");
        assert_eq!(connect_hint(&timed_out, false), NOT_ACCEPTED);
        assert_eq!(
            connect_hint(&timed_out, true),
            NO_ANSWER,
            "a TCP connection was made: the agent is there but did not answer"
        );
        assert!(NO_ANSWER.contains("busy") && NOT_ACCEPTED.contains("busy"));
        let other = std::io::Error::other("something else");
        assert!(connect_hint(&other, false).contains("is routewatch-agent running there"));
    }

    #[test]
    fn auto_asks_agents_on_loopback_for_no_compression() {
        for addr in [
            "127.0.0.1:50051",
            "127.9.0.1",
            "[::1]:50051",
            "localhost:50051",
            "LOCALHOST",
        ] {
            assert!(accepted(Compression::Auto, addr).is_empty(), "{addr}");
        }
        for addr in [
            "10.0.0.1:50051",
            "[2001:db8::1]:50051",
            "node-1:50051",
            "node-1",
        ] {
            assert_eq!(
                accepted(Compression::Auto, addr),
                &[CompressionEncoding::Zstd, CompressionEncoding::Gzip],
                "{addr}"
            );
        }
        assert_eq!(
            accepted(Compression::Zstd, "127.0.0.1:50051"),
            &[CompressionEncoding::Zstd],
            "asked for by name, it is used even on loopback"
        );
    }
}
