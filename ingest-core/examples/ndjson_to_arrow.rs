//! Reads our NDJSON format on stdin (one event object per line, see the crate docs),
//! runs every event through the full pipeline, and writes an Arrow IPC stream
//! (LZ4-compressed, schema v1) to stdout. Rejected lines go to stderr as JSON lines:
//! `{"line": 3, "field": "url", "code": "missing", "reason": "url: required"}`
//! (`line` is 1-based). Bots are dropped silently, as in the services.
//!
//! ```text
//! cargo run -p ingest-core --example ndjson_to_arrow < events.ndjson > events.arrows
//! python3 -c "import pyarrow.ipc as i, sys; print(i.open_stream(sys.argv[1]).read_all())" events.arrows
//! ```
//!
//! Options (all optional): `--secret S` (the daily-salt secret), `--ip A` and
//! `--user-agent UA` (every line is treated as coming from this client),
//! `--received-at MS` (Unix ms; default: now), `--batch-rows N` (default 10 000).
//!
//! The lines are fed to the pipeline in chunks shaped like requests (at most
//! `Limits::max_events_per_request` lines and `Limits::max_body_bytes` bytes), and the
//! accepted events go through a `Batcher` whose batches are streamed out with an
//! `IpcEncoder`: memory stays bounded whatever the input size.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use arrow_array::RecordBatch;
use ingest_core::{
    BatchConfig, Batcher, DailySalt, Error, Format, IpcEncoder, Pipeline, PipelineConfig,
    RequestContext,
};

struct Args {
    secret: String,
    ip: String,
    user_agent: String,
    received_at_ms: Option<i64>,
    batch_rows: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        secret: "ndjson_to_arrow example secret".into(),
        ip: "192.0.2.1".into(),
        user_agent: "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0".into(),
        received_at_ms: None,
        batch_rows: 10_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--secret" => a.secret = value()?,
            "--ip" => a.ip = value()?,
            "--user-agent" => a.user_agent = value()?,
            "--received-at" => {
                a.received_at_ms = Some(value()?.parse().map_err(|e| format!("{flag}: {e}"))?)
            }
            "--batch-rows" => {
                a.batch_rows = value()?.parse().map_err(|e| format!("{flag}: {e}"))?
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(a)
}

/// The example is the caller: it owns the clock (ingest-core never reads it).
#[allow(clippy::disallowed_methods)]
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Everything one run keeps.
struct Run<W: Write, E: Write> {
    pipeline: Pipeline,
    batcher: Batcher,
    encoder: IpcEncoder,
    out: W,
    err: E,
    salt: DailySalt,
    args: Args,
    received_at_ms: i64,
    chunks: u64,
}

impl<W: Write, E: Write> Run<W, E> {
    fn reject(&mut self, line: usize, e: &Error) -> std::io::Result<()> {
        let p = e.to_problem();
        let json = serde_json::json!({
            "line": line + 1, "field": p.field, "code": p.code, "reason": p.reason,
        });
        writeln!(self.err, "{json}")
    }

    fn emit(&mut self, batch: Option<RecordBatch>) -> Result<(), String> {
        if let Some(b) = batch {
            let bytes = self.encoder.encode(&b).map_err(|e| e.to_string())?;
            self.out.write_all(&bytes).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Runs one request-shaped chunk: `body` is the lines joined by `\n`, `lines` their
    /// 0-based line numbers in the input. A request-level error (a line that makes the
    /// chunk unparseable as a whole) is pinned on its line by retrying line by line.
    fn chunk(&mut self, body: &mut [u8], lines: &[usize]) -> Result<(), String> {
        if lines.is_empty() {
            return Ok(());
        }
        self.chunks += 1;
        let mut seed = [0u8; 16];
        seed[..8].copy_from_slice(&self.received_at_ms.to_le_bytes());
        seed[8..].copy_from_slice(&self.chunks.to_le_bytes());
        let ctx = RequestContext {
            received_at_ms: self.received_at_ms,
            client_ip: &self.args.ip,
            user_agent: &self.args.user_agent,
            country: "",
            region: "",
            city: "",
            id_seed: seed,
            salt: &self.salt,
            sites: None,
        };
        let copy = if lines.len() > 1 {
            Some(body.to_vec())
        } else {
            None
        };
        match self.pipeline.process(Format::Own, body, &ctx) {
            Ok(outcome) => {
                for ev in &outcome.accepted {
                    let b = self.batcher.push(ev, self.received_at_ms);
                    self.emit(b)?;
                }
                for r in &outcome.rejected {
                    let line = lines.get(r.index).copied().unwrap_or(lines[0]);
                    self.reject(line, &r.error).map_err(|e| e.to_string())?;
                }
                Ok(())
            }
            Err(e) => match copy {
                None => self.reject(lines[0], &e).map_err(|e| e.to_string()),
                Some(all) => {
                    for (one, &line) in all.split(|&b| b == b'\n').zip(lines) {
                        self.chunk(&mut one.to_vec(), &[line])?;
                    }
                    Ok(())
                }
            },
        }
    }
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let received_at_ms = args.received_at_ms.unwrap_or_else(now_ms);
    let config = PipelineConfig::default();
    let (max_events, max_bytes) = (
        config.limits.max_events_per_request,
        config.limits.max_body_bytes,
    );
    let stdout = std::io::stdout().lock();
    let mut run = Run {
        pipeline: Pipeline::new(config),
        batcher: Batcher::new(BatchConfig {
            max_rows: args.batch_rows,
            ..BatchConfig::default()
        }),
        encoder: IpcEncoder::new().map_err(|e| e.to_string())?,
        out: std::io::BufWriter::new(stdout),
        err: std::io::BufWriter::new(std::io::stderr().lock()),
        salt: DailySalt::derive(args.secret.as_bytes(), received_at_ms),
        args,
        received_at_ms,
        chunks: 0,
    };
    let header = run.encoder.header();
    run.out.write_all(&header).map_err(|e| e.to_string())?;

    let mut input = std::io::stdin().lock();
    let mut line = Vec::new();
    let mut body = Vec::new();
    let mut lines = Vec::new();
    for n in 0.. {
        line.clear();
        let read = input
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("stdin: {e}"))?;
        if read == 0 {
            break;
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        if !lines.is_empty()
            && (lines.len() == max_events || body.len() + 1 + text.len() > max_bytes)
        {
            run.chunk(&mut body, &lines)?;
            body.clear();
            lines.clear();
        }
        if !body.is_empty() {
            body.push(b'\n');
        }
        body.extend_from_slice(text);
        lines.push(n);
    }
    run.chunk(&mut body, &lines)?;
    let last = run.batcher.flush();
    run.emit(last)?;
    let end = run.encoder.finish().map_err(|e| e.to_string())?;
    run.out.write_all(&end).map_err(|e| e.to_string())?;
    run.out.flush().map_err(|e| e.to_string())?;
    run.err.flush().map_err(|e| e.to_string())?;
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ndjson_to_arrow: {e}");
            ExitCode::FAILURE
        }
    }
}
