//! Any body through the whole pipeline (both JSON formats): never a panic, and no
//! accepted row ever carries the client's IP address or user agent.
#![no_main]
use ingest_core::{DailySalt, Format, Pipeline, PipelineConfig, RequestContext};
use libfuzzer_sys::fuzz_target;

const IP: &str = "198.51.100.77";
const UA: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0 QQUNIQUEQQ";

fuzz_target!(|data: &[u8]| {
    let salt = DailySalt::derive(b"fuzz", 1_700_000_000_000);
    let ctx = RequestContext {
        received_at_ms: 1_700_000_000_000,
        client_ip: IP,
        user_agent: UA,
        country: "NL",
        region: "",
        city: "",
        id_seed: [1; 16],
        salt: &salt,
        sites: None,
    };
    let mut pipeline = Pipeline::new(PipelineConfig::default());
    for format in [Format::Own, Format::Plausible] {
        let mut body = data.to_vec();
        if let Ok(out) = pipeline.process(format, &mut body, &ctx) {
            for ev in &out.accepted {
                let row = format!("{ev:?}");
                // The body itself may contain these strings (then they can be a URL):
                // only a leak from the context counts.
                let from_body = |s: &str| data.windows(s.len()).any(|w| w == s.as_bytes());
                assert!(from_body(IP) || !row.contains(IP), "IP leaked into a row");
                assert!(
                    from_body("QQUNIQUEQQ") || !row.contains("QQUNIQUEQQ"),
                    "UA leaked"
                );
            }
        }
    }
});
