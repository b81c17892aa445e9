//! Serves connections with hyper directly instead of `axum::serve`, so request headers
//! have a deadline: `axum::serve` gives hyper no timer, which turns hyper's
//! `header_read_timeout` off and lets a client that sends its headers one byte a
//! second (slowloris) hold a connection and a file descriptor forever.

use std::future::Future;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

/// A connection's read buffer at most, about (hyper's default is ≈ 400 KiB): a request
/// line and headers that do not fit are refused by hyper itself (a bare 431, no JSON),
/// and a body is read in pieces of up to this. The sink's own head limits
/// (`--max-url-bytes`, `--max-header-bytes`, `server::head`) stay well inside it, so a
/// request just over one of them is read whole and refused with JSON.
pub const MAX_CONNECTION_BUFFER: usize = 64 << 10;

/// The most header lines hyper reads in a request: more are refused by hyper itself (a
/// bare 431). 100, hyper's default, is also the most it parses into arrays on the
/// stack; past it hyper allocates both arrays on the heap for every request (≈ 5 %
/// slower, its docs say). `--max-headers` (`server::head`) stays below it, so a request
/// one header over that limit is read and refused with JSON.
pub const MAX_HEADER_LINES: usize = 100;

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting, lets
/// every connection finish its request (idle ones close at once) and returns.
/// A request's headers must arrive within `header_timeout`. At most `max_connections`
/// are served at once; others wait in the listen backlog.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
    max_connections: usize,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
    // Every connection task holds a clone of `open_rx`; `open_tx.closed()` resolves when
    // the last one is gone.
    let (open_tx, open_rx) = watch::channel(());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let (io, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: wait a little instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let svc = app
            .clone()
            .map_request(move |mut req: axum::http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.map(axum::body::Body::new)
            });
        let svc = TowerToHyperService::new(svc);
        let mut stop = stop_rx.clone();
        let open = open_rx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(MAX_CONNECTION_BUFFER)
                .max_headers(MAX_HEADER_LINES);
            let conn = b.serve_connection(TokioIo::new(io), svc);
            let mut conn = std::pin::pin!(conn);
            let stopping = async move {
                // The guard `wait_for` returns is not Send: drop it at once.
                let _ = stop.wait_for(|s| *s).await.map(|_| ());
            };
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stopping => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.as_mut().await;
                }
            }
            drop(open);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(open_rx);
    open_tx.closed().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn start(header_timeout: Duration) -> (SocketAddr, watch::Sender<bool>) {
        start_with(header_timeout, 1024).await
    }

    async fn start_with(
        header_timeout: Duration,
        max_connections: usize,
    ) -> (SocketAddr, watch::Sender<bool>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let app = Router::new().route(
            "/peer",
            get(|ConnectInfo(p): ConnectInfo<SocketAddr>| async move { p.ip().to_string() }),
        );
        let (tx, mut rx) = watch::channel(false);
        tokio::spawn(serve(l, app, header_timeout, max_connections, async move {
            let _ = rx.wait_for(|s| *s).await.map(|_| ());
        }));
        (addr, tx)
    }

    async fn read_all(s: &mut tokio::net::TcpStream) -> String {
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn answers_with_the_peer_address_and_cuts_slow_headers() {
        let (addr, stop) = start(Duration::from_millis(300)).await;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let reply = read_all(&mut s).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.ends_with("127.0.0.1"), "{reply}");
        // Headers that never end: closed after the header timeout, no answer.
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let t0 = std::time::Instant::now();
        let reply = read_all(&mut s).await;
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
        assert!(!reply.contains(" 200 "), "{reply}");
        let _ = stop.send(true);
    }

    /// Past `max_connections` a new connection waits, unanswered, until one closes;
    /// headers over the connection buffer are refused.
    #[tokio::test]
    async fn connections_past_the_limit_wait_for_a_free_slot() {
        let (addr, stop) = start_with(Duration::from_secs(20), 1).await;
        let idle = tokio::net::TcpStream::connect(addr).await.unwrap();
        // Let the first connection take the only slot.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut first = [0u8; 1];
        let waited = tokio::time::timeout(Duration::from_millis(500), s.read(&mut first)).await;
        assert!(waited.is_err(), "answered while the slot was taken");
        drop(idle);
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut reply)).await;
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        // Headers far larger than the buffer (4×): refused (431), not buffered whole.
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let big = "a".repeat(4 * MAX_CONNECTION_BUFFER);
        s.write_all(format!("GET /peer HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let reply = read_all(&mut s).await;
        assert!(
            reply.starts_with("HTTP/1.1 431"),
            "{}",
            &reply[..reply.len().min(80)]
        );
        let _ = stop.send(true);
    }

    /// hyper reads a request of [`MAX_HEADER_LINES`] headers, and refuses one more.
    #[tokio::test]
    async fn hyper_reads_max_header_lines_and_refuses_one_more() {
        let (addr, stop) = start(Duration::from_secs(5)).await;
        for (lines, status) in [(MAX_HEADER_LINES, "200"), (MAX_HEADER_LINES + 1, "431")] {
            // Host and Connection, and the rest.
            let extra: String = (0..lines - 2).map(|i| format!("X-H{i}: v\r\n")).collect();
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(
                format!("GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
            let reply = read_all(&mut s).await;
            assert!(
                reply.starts_with(&format!("HTTP/1.1 {status}")),
                "{lines}: {reply}"
            );
        }
        let _ = stop.send(true);
    }
}
