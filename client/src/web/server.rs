//! The listener: plain HTTP on loopback, TLS elsewhere (the agent's
//! certificate files and client allow-list, re-read when they change),
//! the bearer token checked before any page, and the pages' router.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Request, Response, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::TokioIo;
use routewatch_agent::tls::{ClientIdentity, TlsFiles};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::Service;

use super::access::{token_matches, Access};
use super::args::Web;
use super::page::{reply, wants_json, Params};
use super::pool::Pool;
use super::{assets, diff, fleet, host, live, prefix};
use crate::printer::now_unix_nano;
use crate::store::StoreUrl;
use crate::ClientError;

/// The cookie a browser keeps the token in, once given `?token=`.
const TOKEN_COOKIE: &str = "routewatch_token";

/// Serves the pages until `shutdown`.
pub async fn run(args: Web, shutdown: CancellationToken) -> Result<(), ClientError> {
    let access = Access::from_args(&args)?;
    let url = StoreUrl::parse(&args.store)?;
    if let StoreUrl::Sqlite(path) = &url {
        if !path.exists() {
            return Err(ClientError::NoStore(url.to_string()));
        }
    }
    let pool = Arc::new(Pool::open(url.clone(), args.connections).await?);
    let tls = match &access.tls {
        Some(files) => Some(Arc::new(TlsState::load(
            files.clone(),
            args.tls.reload_interval(),
        )?)),
        None => None,
    };
    let listener = TcpListener::bind(args.listen).await.map_err(|e| {
        ClientError::Usage(format!(
            "--listen {}: cannot listen there: {e}",
            args.listen
        ))
    })?;
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    eprintln!("routewatch web: serving {scheme}://{local}/ from {url}");
    let router = router(pool);
    let access = Arc::new(access);
    let handshake = args.tls.handshake_timeout();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, most likely: wait, do not spin.
                    tracing::warn!(error = %e, "web: cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (router, access, tls, shutdown) = (
            router.clone(),
            access.clone(),
            tls.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            let Some(tls) = tls else {
                serve(tcp, router, access, None, shutdown).await;
                return;
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
            let stream = match tokio::time::timeout(handshake, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::info!(%peer, error = %e, "web: TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let identity = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| ClientIdentity::from_der(c));
            let denied = match identity {
                Some(id)
                    if !access.allow_clients.is_empty()
                        && !access.allow_clients.iter().any(|a| id.has(a)) =>
                {
                    tracing::warn!(%peer, identities = %id, "web: client not on --allow-client: denied");
                    Some(format!(
                        "this client's certificate ({id}) is not among the identities this server admits (--allow-client)\n"
                    ))
                }
                _ => None,
            };
            serve(stream, router, access, denied, shutdown).await;
        });
    }
}

/// One connection, HTTP/1.1, until it closes or the server stops.
async fn serve<S>(
    io: S,
    router: Router,
    access: Arc<Access>,
    denied: Option<String>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let mut router = router.clone();
        let access = access.clone();
        let denied = denied.clone();
        async move {
            if let Some(why) = denied {
                return Ok::<_, Infallible>((StatusCode::FORBIDDEN, why).into_response());
            }
            if let Some(token) = &access.token {
                if let Some(refused) = check_token(&request, token) {
                    return Ok(refused);
                }
            }
            router.call(request).await
        }
    });
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), service);
    tokio::select! {
        _ = connection => {}
        _ = shutdown.cancelled() => {}
    }
}

/// `None` when `request` carries the token (header or cookie); otherwise
/// the answer: a redirect that keeps it in a cookie (`?token=`), or 401 in
/// words.
fn check_token<B>(request: &Request<B>, token: &str) -> Option<Response<axum::body::Body>> {
    let headers = request.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if bearer.is_some_and(|b| token_matches(b, token)) {
        return None;
    }
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(TOKEN_COOKIE)?.strip_prefix('='))
        .any(|c| token_matches(c, token));
    if cookie {
        return None;
    }
    let query = request.uri().query().unwrap_or("");
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    if pairs
        .iter()
        .any(|(k, v)| k == "token" && token_matches(v, token))
    {
        let rest: Vec<(String, String)> = pairs.into_iter().filter(|(k, _)| k != "token").collect();
        let rest = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(rest)
            .finish();
        let to = if rest.is_empty() {
            request.uri().path().to_owned()
        } else {
            format!("{}?{rest}", request.uri().path())
        };
        let mut response = Redirect::to(&to).into_response();
        let cookie = format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; Secure; SameSite=Strict");
        if let Ok(v) = header::HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, v);
        }
        return Some(response);
    }
    Some(
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "this server needs its token (the contents of its --token-file): send the header \
             `Authorization: Bearer TOKEN`, or open a page once with ?token=TOKEN\n",
        )
            .into_response(),
    )
}

/// The server's TLS configuration, re-read when the files change (checked
/// at most every `every`, at a handshake).
struct TlsState {
    files: TlsFiles,
    every: Duration,
    current: Mutex<(Instant, u128, Arc<ServerConfig>)>,
}

impl TlsState {
    fn load(files: TlsFiles, every: Duration) -> Result<TlsState, ClientError> {
        let (fingerprint, config) = Self::build(&files)?;
        Ok(TlsState {
            files,
            every,
            current: Mutex::new((Instant::now(), fingerprint, config)),
        })
    }

    fn build(files: &TlsFiles) -> Result<(u128, Arc<ServerConfig>), ClientError> {
        let contents = files
            .read()
            .map_err(|e| ClientError::Usage(e.to_string()))?;
        let config = files
            .server_config(&contents)
            .map_err(|e| ClientError::Usage(e.to_string()))?;
        // The agent names h2 for gRPC; the pages are served over HTTP/1.1.
        let mut config = (*config).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok((contents.fingerprint(), Arc::new(config)))
    }

    fn config(&self) -> Arc<ServerConfig> {
        let mut current = self.current.lock().expect("tls lock");
        if current.0.elapsed() >= self.every {
            current.0 = Instant::now();
            match self.files.read() {
                Ok(contents) if contents.fingerprint() != current.1 => {
                    match Self::build(&self.files) {
                        Ok((fingerprint, config)) => {
                            tracing::info!("web: new TLS files in use");
                            current.1 = fingerprint;
                            current.2 = config;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "web: new TLS files are unusable; the previous ones stay in use")
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "web: cannot read the TLS files; the previous ones stay in use")
                }
            }
        }
        current.2.clone()
    }
}

/// Which page a request asks for.
#[derive(Clone, Copy)]
enum Which {
    Fleet,
    Host,
    Prefix,
    Diff,
    Live,
}

fn router(pool: Arc<Pool>) -> Router {
    let page = |which: Which| {
        get(
            move |State(pool): State<Arc<Pool>>,
                  headers: HeaderMap,
                  Query(params): Query<BTreeMap<String, String>>| async move {
                answer(pool, which, headers, Params(params)).await
            },
        )
    };
    Router::new()
        .route("/", get(|| async { Redirect::to("/fleet") }))
        .route("/fleet", page(Which::Fleet))
        .route("/host", page(Which::Host))
        .route("/prefix", page(Which::Prefix))
        .route("/diff", page(Which::Diff))
        .route("/live", page(Which::Live))
        .route(
            "/live/events",
            get(
                |State(pool): State<Arc<Pool>>, Query(params): Query<BTreeMap<String, String>>| async move {
                    match live::events(pool, Params(params)).await {
                        Ok(sse) => sse.into_response(),
                        Err(e) => reply(Err(e), true),
                    }
                },
            ),
        )
        .route(
            "/assets/app.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], assets::CSS) }),
        )
        .route(
            "/assets/app.js",
            get(|| async {
                ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], assets::JS)
            }),
        )
        .with_state(pool)
}

async fn answer(
    pool: Arc<Pool>,
    which: Which,
    headers: HeaderMap,
    params: Params,
) -> axum::response::Response {
    let json = wants_json(&headers, &params);
    let page = async {
        let mut store = pool.get().await?;
        let now = now_unix_nano();
        match which {
            Which::Fleet => fleet::page(&mut store, &params, now).await,
            Which::Host => host::page(&mut store, &params, now).await,
            Which::Prefix => prefix::page(&mut store, &params, now).await,
            Which::Diff => diff::page(&mut store, &params, now).await,
            Which::Live => live::page(&mut store, &params, now).await,
        }
    }
    .await;
    reply(page, json)
}
