//! `sink-clickhouse`: see the crate README (`serve` is the default subcommand).

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use sink_clickhouse::config::{Cli, Command, MigrateArgs, ServeArgs};
use sink_clickhouse::loader::{Loader, LoaderConfig, Store};
use sink_clickhouse::metrics::Metrics;
use sink_clickhouse::parquet_out::ParquetOut;
use sink_clickhouse::quota::Quotas;
use sink_clickhouse::server::{self, AppState, Health, HttpConfig};
use sink_clickhouse::spool::{Spool, SpoolConfig};
use sink_clickhouse::store;
use tokio::sync::watch;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cmd = cli.command.unwrap_or(Command::Serve(Box::new(cli.serve)));
    let log_format = match &cmd {
        Command::Serve(a) => a.log_format.clone(),
        Command::Migrate(m) => m.log_format.clone(),
    };
    init_tracing(&log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let res = match cmd {
        Command::Serve(a) => rt.block_on(serve(*a)),
        Command::Migrate(m) => rt.block_on(migrate(m)),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "exiting");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    if format == "json" {
        b.json().init();
    } else {
        b.init();
    }
}

async fn migrate(m: MigrateArgs) -> Result<(), String> {
    store::migrate(&m.clickhouse, m.cluster.as_deref()).await
}

/// The salt secret: the flag, or a random one created once in the data dir.
fn salt_secret(arg: Option<&str>, data_dir: &Path) -> Result<Vec<u8>, String> {
    if let Some(s) = arg {
        return Ok(s.as_bytes().to_vec());
    }
    let p = data_dir.join("salt-secret");
    if let Ok(s) = std::fs::read_to_string(&p) {
        if !s.trim().is_empty() {
            return Ok(s.trim().as_bytes().to_vec());
        }
    }
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| e.to_string())?;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    std::fs::write(&p, &hex).map_err(|e| format!("{}: {e}", p.display()))?;
    tracing::warn!(file = %p.display(), "no --salt-secret: created a random one (set SINK_SALT_SECRET to share visitor ids between instances)");
    Ok(hex.into_bytes())
}

async fn serve(a: ServeArgs) -> Result<(), String> {
    std::fs::create_dir_all(&a.data_dir).map_err(|e| format!("{}: {e}", a.data_dir.display()))?;
    let secret = salt_secret(a.salt_secret.as_deref(), &a.data_dir)?;
    let (spool, rec) = Spool::open(SpoolConfig {
        dir: a.data_dir.join("spool"),
        quarantine_dir: a.data_dir.join("quarantine"),
        max_bytes: a.spool_max_bytes,
        segment_max_bytes: a.flush_bytes,
        segment_max_rows: a.flush_rows,
        segment_max_age: a.flush_interval,
        segment_idle: a.flush_idle,
        segment_idle_min_rows: a.flush_idle_rows,
        batch_ids_keep: a.batch_ids_keep,
        compress_above_bytes: a.spool_compress_above,
        recycle: a.spool_recycle as usize,
    })
    .map_err(|e| format!("opening the spool: {e}"))?;
    tracing::info!(
        segments = rec.segments,
        rows = rec.rows,
        cut_bytes = rec.cut_bytes,
        quarantined = rec.quarantined.len(),
        "spool recovered"
    );
    let quotas = Arc::new(Quotas::new(a.sites.clone())?);
    if a.sites.is_none() {
        tracing::warn!("no --sites file: any site is accepted and no quota applies");
    }
    if a.batch_token.is_none() {
        tracing::warn!("no --batch-token: POST /v1/batches refuses everything");
    }
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    let (store, usage): (Arc<dyn Store>, Option<store::UsageReader>) = if a
        .clickhouse
        .clickhouse_url
        .is_empty()
    {
        let dir = a.data_dir.join("parquet");
        tracing::info!(dir = %dir.display(), "embedded mode: no --clickhouse-url, writing Parquet files");
        (
            Arc::new(ParquetOut::new(dir).map_err(|e| e.to_string())?),
            None,
        )
    } else {
        let (s, u) = store::clickhouse(&a.clickhouse).await?;
        (s, Some(u))
    };
    let max_body = usize::try_from(a.max_body_bytes).unwrap_or(usize::MAX);
    let rate_limit = ingest_core::RateLimitConfig {
        rate_per_sec: a.client_rate,
        burst: a.client_burst,
        max_keys: a.client_max_keys,
    };
    if let Some(why) = rate_limit.refuses_requests_of(a.max_events_per_request) {
        return Err(format!("--max-events-per-request / --client-burst: {why}"));
    }
    let state = Arc::new(
        AppState::new(
            HttpConfig {
                pipeline: ingest_core::PipelineConfig {
                    limits: server::limits(max_body, a.max_events_per_request),
                    ..Default::default()
                },
                max_batch_bytes: usize::try_from(a.max_batch_bytes).unwrap_or(usize::MAX),
                max_batch_rows: a.max_batch_rows,
                max_batch_ids: a.max_batch_ids,
                ipc_limits: ingest_core::IpcLimits {
                    max_expansion: a.max_ipc_expansion,
                    min_decoded_bytes: a.min_ipc_decoded_bytes,
                },
                batch_token: a.batch_token.clone(),
                trusted_proxies: a.trusted_proxy.clone(),
                unready_after: a.unready_after,
                request_timeout: a.request_timeout,
                head: server::head::HeadLimits {
                    max_url_bytes: a.max_url_bytes,
                    max_header_bytes: a.max_header_bytes,
                    max_headers: a.max_headers,
                },
            },
            spool.clone(),
            metrics.clone(),
            health.clone(),
            quotas.clone(),
            rate_limit,
            secret,
        )
        .map_err(|e| e.to_string())?,
    );
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .map_err(|e| format!("listening on {}: {e}", a.listen))?;
    tracing::info!(listen = %a.listen, "sink listening");

    let loader = Arc::new(Loader::new(
        spool.clone(),
        store,
        metrics.clone(),
        health.clone(),
        LoaderConfig {
            max_rows: usize::try_from(a.insert_rows).unwrap_or(usize::MAX),
            concurrency: usize::from(a.load_concurrency),
            min_backoff: Duration::from_millis(100),
            max_backoff: a.retry_max_backoff,
        },
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    let loader_task = tokio::spawn({
        let l = loader.clone();
        async move { l.run(stop_rx).await }
    });
    let quota_task = tokio::spawn(quota_loop(quotas.clone(), usage));

    let app = server::router(state);
    let h = health.clone();
    let drain_delay = a.drain_delay;
    let shutdown = async move {
        wait_for_signal().await;
        h.shutting_down.store(true, Ordering::Relaxed);
        tracing::info!("shutdown requested: refusing new requests, draining");
        tokio::time::sleep(drain_delay).await;
    };
    // Not axum::serve: it leaves hyper's header read timeout off (see server::listen).
    let serve = tokio::spawn(server::listen::serve(
        listener,
        app,
        a.request_timeout,
        a.max_connections as usize,
        shutdown,
    ));
    // Wait for the signal, then give in-flight requests until the deadline.
    let mut serve = serve;
    let deadline;
    loop {
        tokio::select! {
            r = &mut serve => {
                if let Ok(Err(e)) = r { tracing::error!(error = %e, "server error"); }
                deadline = Instant::now() + a.shutdown_timeout;
                break;
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if health.shutting_down.load(Ordering::Relaxed) {
                    tokio::time::sleep(drain_delay).await;
                    deadline = Instant::now() + a.shutdown_timeout;
                    if tokio::time::timeout(a.shutdown_timeout / 2, &mut serve).await.is_err() {
                        tracing::warn!("in-flight requests did not finish in time");
                    }
                    break;
                }
            }
        }
    }
    spool.close().await;
    quota_task.abort();
    let _ = stop_tx.send(true);
    // The loop's inserts in flight may finish, but only until the deadline (one could
    // run to the client timeout): then they are dropped, their segments stay in the
    // spool and go again, with the same tokens, at the next start.
    let mut loader_task = loader_task;
    if tokio::time::timeout_at(deadline.into(), &mut loader_task)
        .await
        .is_err()
    {
        loader_task.abort();
        let _ = loader_task.await;
    }
    let empty = loader.drain(deadline).await;
    if empty {
        tracing::info!("spool fully loaded; bye");
    } else {
        tracing::warn!(
            bytes = spool.bytes(),
            "spool not empty at exit; it is loaded at the next start"
        );
    }
    Ok(())
}

async fn quota_loop(quotas: Arc<Quotas>, usage: Option<store::UsageReader>) {
    loop {
        quotas.reload_if_changed();
        if let (Some(u), Some(_)) = (&usage, quotas.registry()) {
            if quotas.needs_refresh() {
                let now = server::now_ms();
                let (start, _) = ingest_core::month_bounds(now);
                match u.month_usage(start).await {
                    Ok(m) => {
                        let mut crossed = std::collections::HashMap::new();
                        for (site, limit) in quotas.over_limit(start, &m) {
                            match u.crossed_at(&site, start, limit).await {
                                Ok(Some(at_ms)) => {
                                    crossed.insert(site, at_ms);
                                }
                                Ok(None) => {}
                                Err(e) => tracing::warn!(
                                    site, error = %e,
                                    "reading when a site crossed its quota failed"
                                ),
                            }
                        }
                        tracing::info!(
                            sites = m.len(),
                            crossings_read = crossed.len(),
                            month_start_ms = start,
                            "month-to-date usage read"
                        );
                        quotas.set_usage(start, m, crossed)
                    }
                    Err(e) => tracing::warn!(error = %e, "reading month-to-date usage failed"),
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
