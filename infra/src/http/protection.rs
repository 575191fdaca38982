//! What stands between the internet and the API: request rate limits per bearer token and per
//! client address (429 with `Retry-After`), a `Host` allow-list with CORS for the same hosts
//! (the seed's `ALLOWED_HOSTS`), a request timeout, and security headers.
//!
//! Rate limits are kept in memory per process (GCRA, `governor`): they protect one instance
//! from a flood, while the fair share of the Twilio sender — the limit that matters to the
//! business — is enforced across processes by the dispatcher. Tokens are keyed by a hash, so
//! the limiter never holds a credential.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

use super::problem::{Problem, ProblemKind};
use crate::config::HttpConfig;

/// Wraps `router` with every protection `config` asks for.
pub fn protect(router: Router, config: &HttpConfig) -> Router {
    let limits = Arc::new(Limits {
        per_token: limiter(config.rate_limit_per_token),
        per_ip: limiter(config.rate_limit_per_ip),
        trust_forwarded_for: config.trust_forwarded_for,
        clock: DefaultClock::default(),
    });
    spawn_forgetting(Arc::clone(&limits));
    let hosts = Arc::new(config.allowed_hosts.clone());
    let mut router = router
        .layer(middleware::from_fn_with_state(limits, rate_limit))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&hosts),
            check_host,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(config.timeout_seconds),
        ));
    if !hosts.is_empty() {
        router = router.layer(cors(&hosts));
    }
    for (name, value) in SECURITY_HEADERS {
        router = router.layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        ));
    }
    router
}

/// Headers every answer carries: an API answer is never a page to frame, sniff or leak from.
const SECURITY_HEADERS: [(&str, &str); 4] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-resource-policy", "same-site"),
];

struct Limits {
    per_token: Option<DefaultKeyedRateLimiter<[u8; 16]>>,
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    trust_forwarded_for: bool,
    clock: DefaultClock,
}

fn limiter<K: std::hash::Hash + Eq + Clone>(per_second: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = rate.saturating_mul(NonZeroU32::MIN.saturating_add(1));
    Some(RateLimiter::keyed(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

/// Forgets idle keys every minute, so a stream of one-off clients cannot grow memory.
fn spawn_forgetting(limits: Arc<Limits>) {
    if limits.per_token.is_none() && limits.per_ip.is_none() {
        return;
    }
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            if let Some(limiter) = &limits.per_token {
                limiter.retain_recent();
            }
            if let Some(limiter) = &limits.per_ip {
                limiter.retain_recent();
            }
        }
    });
}

async fn rate_limit(State(limits): State<Arc<Limits>>, request: Request, next: Next) -> Response {
    let now = limits.clock.now();
    let by_address = limits
        .per_ip
        .as_ref()
        .zip(client_address(&request, &limits))
        .and_then(|(limiter, address)| limiter.check_key(&address).err());
    let refused = by_address.or_else(|| {
        limits
            .per_token
            .as_ref()
            .zip(token_key(&request))
            .and_then(|(limiter, token)| limiter.check_key(&token).err())
    });
    let wait = refused.map(|not_until| not_until.wait_time_from(now));
    match wait {
        None => next.run(request).await,
        Some(wait) => too_many_requests(wait),
    }
}

fn too_many_requests(wait: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response = Problem::new(
        ProblemKind::TooManyRequests,
        format!("too many requests; retry in {seconds} s"),
    )
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The client's address: the peer, or the last `X-Forwarded-For` hop when a trusted proxy
/// is in front.
fn client_address(request: &Request, limits: &Limits) -> Option<IpAddr> {
    if limits.trust_forwarded_for {
        let forwarded = request
            .headers()
            .get("x-forwarded-for")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.rsplit(',').next())
            .and_then(|last| last.trim().parse().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip())
}

/// A bearer token's key: the first half of its SHA-256.
fn token_key(request: &Request) -> Option<[u8; 16]> {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    let digest = Sha256::digest(token.as_bytes());
    let mut key = [0; 16];
    key.copy_from_slice(&digest[..16]);
    Some(key)
}

async fn check_host(
    State(hosts): State<Arc<Vec<String>>>,
    request: Request,
    next: Next,
) -> Response {
    if hosts.is_empty() || hosts.iter().any(|host| host == "*") {
        return next.run(request).await;
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .map(|host| {
            host.rsplit_once(':')
                .map_or(host, |(name, _)| name)
                .to_ascii_lowercase()
        });
    match host {
        Some(host) if hosts.contains(&host) => next.run(request).await,
        _ => Problem::new(
            ProblemKind::MalformedRequest,
            "this deployment does not serve that host (ALLOWED_HOSTS)",
        )
        .into_response(),
    }
}

/// Browsers on the allowed hosts may call the API.
fn cors(hosts: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods(tower_http::cors::Any)
        .allow_headers(tower_http::cors::Any)
        .expose_headers([
            HeaderName::from_static("keryu-position"),
            HeaderName::from_static("keryu-projection-position"),
        ]);
    if hosts.iter().any(|host| host == "*") {
        return layer.allow_origin(tower_http::cors::Any);
    }
    let hosts = hosts.to_vec();
    layer.allow_origin(AllowOrigin::predicate(move |origin, _| {
        origin
            .to_str()
            .ok()
            .and_then(|origin| origin.split_once("://"))
            .map(|(_, rest)| rest.rsplit_once(':').map_or(rest, |(name, _)| name))
            .is_some_and(|name| hosts.iter().any(|host| host.eq_ignore_ascii_case(name)))
    }))
}
