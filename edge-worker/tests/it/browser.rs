//! The tracker in a real browser: Debian's headless Chromium loads a page served
//! locally that includes `script.js` from the worker; the page view, an SPA navigation
//! (`history.pushState`) and a custom event (`pv('signup', {plan: 'pro'})`) must reach
//! the sink.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use crate::harness::{require, scratch, serial, wait_for, Edge};
use crate::sink::Sink;

const TOKEN: &str = "edge-it-browser";

/// Serves `html` to every request on `port` (a page server needs nothing more).
fn serve_page(port: u16, html: String) {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("page server cannot bind 127.0.0.1:{port}: {e}"));
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
                html.len()
            );
        }
    });
}

#[test]
fn tracker_in_headless_chromium() {
    let _serial = serial();
    require(
        "chromium",
        "apt-get install chromium (scripts/setup-wasm does)",
    );
    let sink = Sink::start("browser", 19342, TOKEN);
    let edge = Edge::start("browser", 19330, sink.url(), TOKEN, false, &[]);
    let page_port = 19350;
    let html = format!(
        r#"<!doctype html><html><head><title>tracker test</title>
<script defer src="{base}/script.js" data-site="example.com" data-api="{base}"></script>
</head><body><p>hello</p><script>
addEventListener('load', function () {{
  setTimeout(function () {{
    history.pushState({{}}, '', '/spa/next');
    setTimeout(function () {{ pv('signup', {{plan: 'pro'}}); document.title = 'done'; }}, 300);
  }}, 300);
}});
</script></body></html>"#,
        base = edge.base
    );
    serve_page(page_port, html);

    let dir = scratch("chromium");
    let out = Command::new("timeout")
        .arg("120")
        .arg("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            // HeadlessChrome's own user agent is (rightly) classified as a bot.
            &format!("--user-agent={}", crate::harness::browser_ua()),
            &format!("--user-data-dir={}", dir.join("profile").display()),
            "--virtual-time-budget=10000",
            "--dump-dom",
            &format!("http://127.0.0.1:{page_port}/page"),
        ])
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("<title>done</title>"),
        "the page's script did not finish (status {:?}):\n{dom}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    let rows = wait_for(
        "the page view, the SPA navigation and the custom event at the sink",
        Duration::from_secs(60),
        || {
            let rows = sink.rows();
            let page = rows
                .iter()
                .any(|r| r.name == "pageview" && r.pathname == "/page");
            let spa = rows
                .iter()
                .any(|r| r.name == "pageview" && r.pathname == "/spa/next");
            let custom = rows
                .iter()
                .any(|r| r.name == "signup" && r.props == [("plan".to_owned(), "pro".to_owned())]);
            (page && spa && custom).then_some(rows)
        },
    );
    assert!(rows.iter().all(|r| r.site_id == "example.com"));
    drop(edge);
}
