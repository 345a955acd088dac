//! One subscription to an agent over gRPC, on a connection that notices a
//! dead path.
//!
//! A link that goes down silently (no RST, no FIN) leaves a TCP connection
//! that looks healthy forever while the agent has nothing to say. HTTP/2
//! pings, sent even while no call is active, find it within about
//! `PING_INTERVAL + PING_TIMEOUT`; TCP keepalive covers the connection below
//! them.

use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use routewatch_proto::v1::route_watch_client::RouteWatchClient;
use routewatch_proto::v1::{AgentInfo, GetInfoRequest, SubscribeRequest, SubscribeResponse};
use routewatch_proto::HOSTNAME_HEADER;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Channel, Endpoint};

use crate::cli::Compression;
use crate::ClientError;

/// Largest response the client accepts; batches are far smaller.
const MAX_MESSAGE: usize = 64 << 20;
/// How long connecting, and then the agent's answer to the call, may take.
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
    pub responses: Responses,
}

/// Connects to the agent at `addr` and starts `request`.
pub async fn subscribe(
    addr: &str,
    request: SubscribeRequest,
    compression: Compression,
) -> Result<Subscribed, ClientError> {
    let stream_err = {
        let addr = addr.to_owned();
        move |status| ClientError::Stream {
            target: addr.clone(),
            status,
        }
    };
    let mut client =
        RouteWatchClient::new(connect(addr).await?).max_decoding_message_size(MAX_MESSAGE);
    if compression == Compression::Auto {
        client = client
            .accept_compressed(CompressionEncoding::Zstd)
            .accept_compressed(CompressionEncoding::Gzip);
    }
    // The agent answers at once; an answer that does not come means a path
    // that died between connecting and calling.
    let response = tokio::time::timeout(CONNECT_TIMEOUT, client.subscribe(request))
        .await
        .map_err(|_| stream_err(no_answer("subscription")))?
        .map_err(&stream_err)?;
    let hostname = response
        .metadata()
        .get(HOSTNAME_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty())
        .map(str::to_owned);
    Ok(Subscribed {
        hostname,
        responses: response
            .into_inner()
            .map(move |r| r.map_err(&stream_err))
            .boxed(),
    })
}

/// Asks the agent at `addr` about itself.
pub async fn get_info(addr: &str) -> Result<AgentInfo, ClientError> {
    let stream_err = |status| ClientError::Stream {
        target: addr.to_owned(),
        status,
    };
    let mut client = RouteWatchClient::new(connect(addr).await?);
    let response = tokio::time::timeout(CONNECT_TIMEOUT, client.get_info(GetInfoRequest {}))
        .await
        .map_err(|_| stream_err(no_answer("information request")))?
        .map_err(stream_err)?;
    Ok(response.into_inner())
}

fn no_answer(what: &str) -> tonic::Status {
    tonic::Status::deadline_exceeded(format!(
        "no answer to the {what} within {}s",
        CONNECT_TIMEOUT.as_secs()
    ))
}

/// A connection to `addr` that notices a dead path.
async fn connect(addr: &str) -> Result<Channel, ClientError> {
    let connect_err = |source| ClientError::Connect {
        target: addr.to_owned(),
        source,
    };
    Endpoint::from_shared(format!("http://{addr}"))
        .map_err(connect_err)?
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(PING_INTERVAL)
        .keep_alive_timeout(PING_TIMEOUT)
        .keep_alive_while_idle(true)
        .tcp_keepalive(Some(TCP_KEEPALIVE))
        .tcp_keepalive_interval(Some(TCP_KEEPALIVE_INTERVAL))
        .tcp_keepalive_retries(Some(TCP_KEEPALIVE_RETRIES))
        .connect()
        .await
        .map_err(connect_err)
}
