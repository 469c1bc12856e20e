//! The network front of `accel serve`: Arrow Flight SQL ([`flight`]) and HTTP ([`http`]) over
//! one statement path ([`query`]: parse, refuse writes on a read-only server, plan on the
//! host's session, stream, observe), the API key ([`auth`]) and the metrics ([`metrics`]).
//!
//! Owns the listeners and their shutdown; reads the host and the datasets through their
//! public methods only (queries, reloads and refreshes go through the same paths as the
//! shell's). Nothing but the CLI depends on it.

pub mod auth;
pub mod flight;
pub mod http;
pub mod metrics;
pub mod query;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::Host;
use crate::dataset::Datasets;
use auth::{AUTHORIZATION, ApiKey, unauthenticated_message};
use metrics::{Metrics, Protocol};
use query::Queries;

/// Default Flight SQL address (Spice's port).
pub const DEFAULT_FLIGHT_ADDR: &str = "127.0.0.1:50051";
/// Default HTTP address (Spice's port).
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8090";

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub flight: SocketAddr,
    pub http: SocketAddr,
    pub api_key: ApiKey,
    /// Accept statements that write or change the catalog.
    pub allow_writes: bool,
    /// How long in-flight requests may run after a stop before they are cut off.
    pub shutdown_timeout: Duration,
}

/// Where the listeners are bound (port 0 in the options becomes a real port here).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub flight: SocketAddr,
    pub http: SocketAddr,
}

/// Serves Flight SQL and HTTP until `stop` completes, then stops accepting, lets requests in
/// flight finish (at most `shutdown_timeout`) and returns. `on_bound` is called once both
/// listeners are bound. Fails only when a listener cannot be bound.
pub async fn serve(
    host: Arc<Host>,
    datasets: Arc<Datasets>,
    options: ServeOptions,
    on_bound: impl FnOnce(Bound),
    stop: impl Future<Output = ()>,
) -> Result<(), String> {
    let flight_listener = bind(options.flight, "Flight SQL", "--flight").await?;
    let http_listener = bind(options.http, "HTTP", "--http").await?;
    let bound = Bound {
        flight: local_addr(&flight_listener)?,
        http: local_addr(&http_listener)?,
    };
    for addr in [bound.flight, bound.http] {
        if !addr.ip().is_loopback() && !options.api_key.is_set() {
            tracing::warn!(
                "listening on {addr}, reachable from other machines, without an API key: \
                 anyone who reaches it can query (set --api-key or ACCEL_API_KEY)"
            );
        }
    }
    let metrics = Arc::new(Metrics::default());
    let queries = Arc::new(Queries::new(
        Arc::clone(&host),
        options.allow_writes,
        Arc::clone(&metrics),
    ));
    let (stopping, stopped) = watch::channel(false);
    let wait_stop = |mut stopped: watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|s| *s).await;
    };

    let api_key = options.api_key.clone();
    let flight_metrics = Arc::clone(&metrics);
    let flight_service = FlightServiceServer::with_interceptor(
        flight::FlightSql::new(Arc::clone(&queries)),
        move |request: tonic::Request<()>| {
            let authorization = request
                .metadata()
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            if api_key.admits(authorization) {
                Ok(request)
            } else {
                flight_metrics.unauthenticated(Protocol::Flight);
                Err(tonic::Status::unauthenticated(unauthenticated_message()))
            }
        },
    );
    let flight_server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(flight_service)
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(flight_listener),
                wait_stop(stopped.clone()),
            ),
    );

    let router = http::router(Arc::new(http::HttpState {
        queries: Arc::clone(&queries),
        datasets: Arc::clone(&datasets),
        api_key: options.api_key.clone(),
    }));
    let http_server = tokio::spawn(
        axum::serve(http_listener, router)
            .with_graceful_shutdown(wait_stop(stopped.clone()))
            .into_future(),
    );

    tracing::info!(
        "Flight SQL on grpc://{} · HTTP on http://{} · {}{}",
        bound.flight,
        bound.http,
        if options.allow_writes {
            "writes allowed"
        } else {
            "read-only"
        },
        if options.api_key.is_set() {
            " · API key required"
        } else {
            ""
        }
    );
    on_bound(bound);

    let mut flight_server = flight_server;
    let mut http_server = http_server;
    tokio::select! {
        () = stop => {}
        ended = &mut flight_server => {
            return Err(format!("the Flight SQL server stopped: {}", ended_reason(ended)));
        }
        ended = &mut http_server => {
            return Err(format!("the HTTP server stopped: {}", ended_reason(ended)));
        }
    }
    let _ = stopping.send(true);
    tracing::info!(
        "stopping: no new connections; waiting up to {:?} for requests in flight",
        options.shutdown_timeout
    );
    let drained = tokio::time::timeout(options.shutdown_timeout, async {
        let _ = (&mut flight_server).await;
        let _ = (&mut http_server).await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "requests still running after {:?}: cutting them off",
            options.shutdown_timeout
        );
        flight_server.abort();
        http_server.abort();
    }
    Ok(())
}

async fn bind(addr: SocketAddr, what: &str, flag: &str) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|e| {
        format!("cannot listen for {what} on {addr}: {e} (choose another address with {flag} ADDR)")
    })
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr, String> {
    listener
        .local_addr()
        .map_err(|e| format!("reading a listener's address: {e}"))
}

fn ended_reason<E: std::fmt::Display>(
    ended: Result<Result<(), E>, tokio::task::JoinError>,
) -> String {
    match ended {
        Ok(Ok(())) => "without an error".to_owned(),
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    }
}
