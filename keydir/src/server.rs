//! Starting and stopping: the pool, migrations, and `run` with graceful shutdown.

use crate::config::Settings;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::store::edges::EdgeWriter;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

/// A pool that connects lazily: the service starts (and answers `/readyz`
/// with 503) while the database is down. Logs how the database is reached (TLS or not).
pub fn connect(settings: &Settings) -> Result<PgPool, Error> {
    let options = PgConnectOptions::from_str(settings.database_url.expose()).map_err(Error::DatabaseConfig)?;
    crate::tls::log_db_transport(&options);
    Ok(PgPoolOptions::new()
        .max_connections(settings.db_pool_max)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options))
}

/// Applies the pending migrations.
pub async fn migrate(pool: &PgPool) -> Result<(), Error> {
    crate::MIGRATOR.run(pool).await?;
    Ok(())
}

/// Serves the API on `api` and metrics on `metrics` until `shutdown`
/// completes, then finishes in-flight requests (waiting claims return
/// at once) and returns.
pub async fn run(
    settings: Settings,
    api: TcpListener,
    metrics: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    // Before anything starts: a bad certificate or key stops the start, naming the file.
    let tls = match &settings.tls {
        Some(files) => Some(files.server_config()?),
        None => None,
    };
    let pool = connect(&settings)?;
    if settings.restore.seed.is_none() {
        tracing::warn!(
            "no OPRF seed (KEYWARD_OPRF_SEED or KEYWARD_OPRF_SEED_FILE): the guess-limited restore is off, \
             its endpoints answer 503 restore-unavailable"
        );
    }
    if settings.transparency.vrf_key.is_none() {
        tracing::warn!(
            "no VRF key (KEYWARD_VRF_KEY or KEYWARD_VRF_KEY_FILE): no key transparency epoch is published, \
             the transparency endpoints answer 503 (updates still queue)"
        );
    }
    if settings.transparency.signing_key.is_none() {
        tracing::warn!(
            "no head signing key (KEYWARD_TRANSPARENCY_SIGNING_KEY or KEYWARD_TRANSPARENCY_SIGNING_KEY_FILE): \
             no epoch head is signed, the head endpoints answer 503"
        );
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let registry = Arc::new(Metrics::new(settings.db_pool_max)?);
    let map = settings.transparency.vrf_key.clone().map(|key| {
        let cache = settings.transparency.proof_cache_bytes;
        Arc::new(crate::transparency::Map::new(pool.clone(), key, cache, registry.transparency.clone()))
    });
    let heads = match (&map, &settings.transparency.signing_key) {
        (Some(_), Some(key)) => {
            let signer = key.signer(&settings.transparency.origin)?;
            tracing::info!(log_key = %signer.verifier(), "signing the transparency log's epoch heads");
            Some(Arc::new(crate::transparency::heads::Heads::new(pool.clone(), signer)))
        }
        _ => None,
    };
    // A few transactions of new holder edges at once, leaving most of the pool to reads.
    let edge_workers = (settings.db_pool_max as usize / 4).clamp(1, 4);
    let edges = EdgeWriter::spawn(pool.clone(), edge_workers, registry.edges.clone());
    let state = AppState {
        pool: pool.clone(),
        metrics: registry,
        edges,
        settings: Arc::new(settings),
        wake: Arc::new(Notify::new()),
        map: map.clone(),
        heads: heads.clone(),
        stopping: stop_rx.clone(),
    };
    let listener_task = tokio::spawn(crate::wake::listen(pool.clone(), state.wake.clone()));
    let retention_task = tokio::spawn(crate::retention::run(
        pool.clone(),
        state.metrics.clone(),
        state.settings.notice_retention,
        state.settings.prune_interval,
        stop_rx.clone(),
    ));
    let publisher_task = map.map(|map| {
        tokio::spawn(crate::transparency::publisher::run(
            pool.clone(),
            map,
            heads,
            state.metrics.transparency.clone(),
            state.settings.transparency.epoch_interval,
            stop_rx.clone(),
        ))
    });
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(api = %api.local_addr()?, scheme, metrics = %metrics.local_addr()?, "keydir serving");
    let router = crate::api::router(state.clone());
    let api_server = async {
        match tls {
            Some(config) => {
                let listener = crate::tls::TlsListener::new(api, config);
                axum::serve(listener, router).with_graceful_shutdown(stopped(stop_rx.clone())).await
            }
            None => axum::serve(api, router).with_graceful_shutdown(stopped(stop_rx.clone())).await,
        }
    };
    let metrics_server = axum::serve(metrics, crate::api::metrics_router(state.clone()))
        .with_graceful_shutdown(stopped(stop_rx.clone()));
    let (api_result, metrics_result) = tokio::join!(api_server, metrics_server);
    listener_task.abort();
    if retention_task.await.is_err() {
        tracing::warn!("notice pruning ended abnormally");
    }
    if let Some(task) = publisher_task
        && task.await.is_err()
    {
        tracing::warn!("the transparency epoch publisher ended abnormally");
    }
    pool.close().await;
    tracing::info!("keydir stopped");
    api_result?;
    metrics_result?;
    Ok(())
}
