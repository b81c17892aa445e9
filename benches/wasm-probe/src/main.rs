//! The native twin of the wasm export: reads NDJSON from the file in argv[1], runs
//! `process` `reps` times (argv[2]), prints `rows ns_per_event` of the best run.

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: wasm-probe-native FILE [REPS]");
    let reps: usize = args.next().map_or(5, |r| r.parse().expect("REPS"));
    let data = std::fs::read(&path).expect("reading the NDJSON file");
    let mut best = f64::MAX;
    let mut rows = 0;
    for _ in 0..reps {
        let t0 = std::time::Instant::now();
        rows = wasm_probe::process(&data, 100);
        best = best.min(t0.elapsed().as_secs_f64());
    }
    println!("{rows} {:.1}", best * 1e9 / rows.max(1) as f64);
}
