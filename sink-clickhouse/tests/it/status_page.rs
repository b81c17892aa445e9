//! The status page (`GET /`) seen in headless Chromium: after a load through `POST /e`,
//! the figures the page shows equal the counters of `/metrics`, and a screenshot of
//! the live charts is saved (its path is printed).
//!
//! Needs Debian's `chromium` at /usr/bin/chromium (fails loudly when missing).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::support::load;
use crate::support::sink::Sink;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Runs headless Chromium on `url` with a fresh profile under `dir` for `budget_ms` of
/// virtual time, plus `extra` flags.
fn chromium(dir: &Path, url: &str, budget_ms: u32, extra: &[&str]) -> std::process::Output {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's `chromium` package to run the status page test"
    );
    let profile = tempfile::tempdir_in(dir).expect("profile dir");
    let out = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        // Virtual time runs the page's 1 s poll several times.
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("running chromium");
    assert!(
        out.status.success(),
        "chromium failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Sums of the samples of each metric family in a Prometheus text exposition.
fn metric_sums(text: &str) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name_labels, value) = line.rsplit_once(' ').expect("sample line");
        let name = name_labels.split('{').next().unwrap().to_owned();
        *m.entry(name).or_default() += value.parse::<f64>().expect("sample value");
    }
    m
}

/// The text of the element with `id` in a dumped DOM.
fn figure(dom: &str, id: &str) -> f64 {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the page:\n{dom}"));
    let rest = &dom[at..];
    let start = rest.find('>').expect("tag end") + 1;
    let text = &rest[start..start + rest[start..].find('<').expect("text end")];
    text.parse()
        .unwrap_or_else(|_| panic!("#{id} shows {text:?}, not a number"))
}

#[test]
fn status_page_shows_the_metrics_figures_and_charts() {
    let sink = Sink::start(&[]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let page = sink.url("/");

    let r = reqwest::blocking::get(&page).expect("GET /");
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));

    // The page is open (polling) while a paced load runs, and its screenshot is taken
    // then, so the charts show the traffic; a second view after the load reads the
    // final figures.
    let shot = tmp.path().join("status.png");
    let shot_arg = format!("--screenshot={}", shot.display());
    let run = std::thread::scope(|sc| {
        let viewer = sc.spawn(|| {
            chromium(
                tmp.path(),
                &page,
                60000,
                &[&shot_arg, "--window-size=1280,900", "--hide-scrollbars"],
            );
        });
        let bad = sc.spawn(|| {
            // A few malformed requests so the rejects chart has a line.
            let http = reqwest::blocking::Client::new();
            for _ in 0..5 {
                http.post(sink.url("/e"))
                    .header("user-agent", load::UA)
                    .body("{not json")
                    .send()
                    .expect("bad post");
                std::thread::sleep(std::time::Duration::from_millis(400));
            }
        });
        // 10 rounds of 20 requests of 50 events, paced so the page sees a rate.
        let mut run = load::Run::default();
        for round in 0..10 {
            let r = load::send_ndjson(&sink.url("/e"), round * 1000, 20, 50, 2, || false);
            run.acked.add(&r.acked);
            for (k, v) in r.refused {
                *run.refused.entry(k).or_default() += v;
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        viewer.join().unwrap();
        bad.join().unwrap();
        run
    });
    assert_eq!(run.acked.rows, 200 * 50, "refused: {:?}", run.refused);

    // Let the loader catch up so `rows loaded` is stable too, and the loaded
    // segments' deletion (it follows the last insert's answer: the spool gauges move
    // just after `rows loaded` does).
    let t0 = std::time::Instant::now();
    let metrics = loop {
        let text = reqwest::blocking::get(sink.url("/metrics"))
            .unwrap()
            .text()
            .unwrap();
        let m = metric_sums(&text);
        if m.get("sink_loaded_rows_total").copied() == Some(10_000.0)
            && m.get("sink_spool_segments").copied() == Some(0.0)
        {
            break m;
        }
        assert!(
            t0.elapsed().as_secs() < 30,
            "loader did not catch up: {text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };

    let dom = String::from_utf8(chromium(tmp.path(), &page, 3000, &["--dump-dom"]).stdout).unwrap();
    let after = metric_sums(
        &reqwest::blocking::get(sink.url("/metrics"))
            .unwrap()
            .text()
            .unwrap(),
    );
    assert_eq!(metrics, after, "counters moved after the load stopped");
    // The loaded segments' files are kept for the next ones (`--spool-recycle`), and
    // their bytes shown beside the spool's.
    assert!(
        metrics
            .get("sink_spool_recycled_bytes")
            .copied()
            .unwrap_or(0.0)
            > 0.0,
        "no kept segment file in the metrics: {metrics:?}"
    );

    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "screenshot too small"
    );
    println!("status page screenshot: {}", shot.display());
    // Keep the screenshot for a human to look at after the test.
    let kept = std::env::temp_dir().join("sink-status-page.png");
    std::fs::copy(&shot, &kept).expect("copy screenshot");
    println!("status page screenshot (kept): {}", kept.display());

    for (id, name) in [
        ("events-total", "sink_events_received_total"),
        ("accepted-total", "sink_events_accepted_total"),
        ("loaded-total", "sink_loaded_rows_total"),
        ("rejected-total", "sink_events_rejected_total"),
        ("rate-limited-total", "sink_rate_limited_total"),
        ("bots-total", "sink_bots_total"),
        ("quota-refused-total", "sink_quota_refused_total"),
        ("ch-errors-total", "sink_clickhouse_errors_total"),
    ] {
        let want = metrics.get(name).copied().unwrap_or(0.0);
        assert_eq!(figure(&dom, id), want, "#{id} vs {name}");
    }
    assert_eq!(figure(&dom, "accepted-total"), 10_000.0);
    assert!(figure(&dom, "rejected-total") >= 5.0);
    // The charts were drawn (one polyline per series with samples).
    assert!(dom.matches("<polyline").count() >= 5, "charts not drawn");
    assert!(
        dom.contains(r#"class="ok">ready<"#),
        "page does not show ready"
    );
}
