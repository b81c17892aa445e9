//! Writes generated page views to stdout, one body per line.
//!
//! `cargo run -p benches --bin gen -- --events 1000 --format ndjson --seed 1`
//! With `--headers`, each line is a JSON object `{"ua","ip","bot","body"}` instead, so
//! a load generator written in another language can replay the request headers too.

use std::io::{BufWriter, Write};

use benches::gen::{GenConfig, Generator, WireFormat};
use clap::Parser;

/// Generate deterministic page views.
#[derive(Parser, Debug)]
struct Args {
    /// Number of events.
    #[arg(long, default_value_t = 1000)]
    events: u64,
    /// `ndjson` (our format) or `plausible`.
    #[arg(long, default_value = "ndjson")]
    format: WireFormat,
    /// Seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Number of sites.
    #[arg(long, default_value_t = 300)]
    sites: usize,
    /// Emit `{"ua","ip","bot","body"}` per line instead of the bare body.
    #[arg(long)]
    headers: bool,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let mut g = Generator::new(GenConfig {
        seed: args.seed,
        sites: args.sites,
        ..GenConfig::default()
    });
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
    for _ in 0..args.events {
        let r = g.next_record(args.format);
        if args.headers {
            let body = std::str::from_utf8(&r.body).expect("generated bodies are UTF-8");
            let line =
                serde_json::json!({"ua": r.user_agent, "ip": r.ip, "bot": r.bot, "body": body});
            serde_json::to_writer(&mut out, &line)?;
        } else {
            out.write_all(&r.body)?;
        }
        out.write_all(b"\n")?;
    }
    out.flush()
}
