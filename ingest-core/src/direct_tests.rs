//! The direct path ([`Pipeline::process_into`]) against the `Event` path
//! ([`Pipeline::process`] + [`Batcher::push`]): same batches, same rejections, same bot
//! counts, on hand-written edge cases and on generated bodies (the benches crate runs
//! the same check on the load generator's data).

use proptest::prelude::*;

use super::*;
use crate::{BatchConfig, DailySalt, PipelineConfig, SiteConfig, SiteRegistry};

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
                      (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 \
                      (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
const NOW: i64 = 1_700_000_000_000;

fn ctx<'c>(ua: &'c str, salt: &'c DailySalt, seed: u8) -> RequestContext<'c> {
    RequestContext {
        received_at_ms: NOW,
        client_ip: "203.0.113.7",
        user_agent: ua,
        country: "de",
        region: "BE",
        city: "Berlin",
        id_seed: [seed; 16],
        salt,
        sites: None,
    }
}

fn batcher(max_rows: usize) -> Batcher {
    Batcher::new(BatchConfig {
        max_rows,
        max_bytes: 1 << 30,
        max_age_ms: i64::MAX,
    })
}

/// Every request through both paths (one pipeline and one batcher each, kept across
/// requests); asserts per-request outcomes equal and returns the batches of both.
fn both(
    requests: &[(Format, &str, RequestContext<'_>)],
    max_rows: usize,
) -> (Vec<RecordBatch>, Vec<RecordBatch>) {
    let (mut old_p, mut new_p) = (
        Pipeline::new(PipelineConfig::default()),
        Pipeline::new(PipelineConfig::default()),
    );
    let (mut old_b, mut new_b) = (batcher(max_rows), batcher(max_rows));
    let (mut old_out, mut new_out) = (Vec::new(), Vec::new());
    for (format, body, c) in requests {
        let mut body_old = body.as_bytes().to_vec();
        let mut body_new = body_old.clone();
        let old = old_p.process(*format, &mut body_old, c);
        let new = new_p.process_into(*format, &mut body_new, c, &mut new_b, NOW, &mut |b| {
            new_out.push(b)
        });
        match (old, new) {
            (Ok(old), Ok(new)) => {
                assert_eq!(old.accepted.len(), new.accepted, "{body}");
                assert_eq!(old.rejected, new.rejected, "{body}");
                assert_eq!(old.bots, new.bots, "{body}");
                for ev in &old.accepted {
                    old_out.extend(old_b.push(ev, NOW));
                }
            }
            (Err(old), Err(new)) => assert_eq!(old, new, "{body}"),
            (old, new) => panic!("{body}: {old:?} vs {new:?}"),
        }
    }
    old_out.extend(old_b.flush());
    new_out.extend(new_b.flush());
    (old_out, new_out)
}

fn assert_same(requests: &[(Format, &str, RequestContext<'_>)]) {
    for max_rows in [1, 3, 10_000] {
        let (old, new) = both(requests, max_rows);
        assert_eq!(old.len(), new.len());
        for (o, n) in old.iter().zip(&new) {
            assert_eq!(o, n);
        }
    }
}

#[test]
fn edge_cases_give_the_same_batches() {
    let salt = DailySalt::derive(b"test secret", NOW);
    let c = ctx(CHROME, &salt, 1);
    let own = r#"[
        {"site":"a.com","url":"https://a.com/x","ttfb_ms":100,"cls":0.1,"scroll_depth":30},
        {"url":"https://a.com/no-site"},
        {"site":"a.com","url":"ftp://a.com/"},
        {"site":"a.com","url":"https://a.com/y","referrer":"https://a.com/x"},
        {"site":"a.com","url":"https://a.com/z","lcp_ms":-1},
        {"site":"a\u002ecom","url":"https:\/\/www.a.com\/caf\u00e9?utm_source=n\u0065ws&utm_term=%20x#f",
         "referrer":"https:\/\/news.ycombinator.com\/item?id=1","props":{"k\"":"v\\","plan":"pro"}},
        {"site":"b.com","url":"https://B.COM/a/../b c","name":"signup","screen_width":390,
         "props":{"x":"1"},"fcp_ms":1,"inp_ms":2,"load_ms":3,"lcp_ms":4},
        {"site":"b.com","url":"http://[::1]:8080/p","referrer":"https://www.google.com/search?q=x"},
        {"site":" B.Com","url":"https://b.com/q"},
        {"site":"A.COM\t","url":"https://a.com/q"},
        {"site":" ","url":"https://a.com/q"}
    ]"#;
    let ndjson = "{\"site\":\"a.com\",\"url\":\"https://a.com/1\"}\r\n\r\n{bad\n\
                  {\"site\":\"b.com\",\"url\":\"https://b.com/2\",\"referrer\":\"\"}\n";
    let plausible = r#"{"n":"pageview","u":"https://www.example.com/pricing?utm_source=news&utm_medium=email&x=1#top",
        "d":"example.com,other.com","r":"https://www.google.com/search?q=x","w":390,"p":{"plan":"pro"}}"#;
    let engagement = r#"{"n":"engagement","u":"https://a.com/","d":"a.com","sd":55,"e":1234}"#;
    let upper_plausible =
        r#"{"n":"pageview","u":"https://example.com/","d":" Example.COM ,x.com"}"#;
    let upper_pixel = "site=+A.Com%20&url=https%3A%2F%2Fa.com%2F";
    let pixel = "site=a.com&url=https%3A%2F%2Fa.com%2Fp%C3%A9%3Futm_campaign%3Dspring\
                 &referrer=https%3A%2F%2Fnews.ycombinator.com%2F&w=1920&p.k=v";
    let mut phone = ctx(IPHONE, &salt, 2);
    phone.country = "xx1";
    phone.region = "";
    phone.city = "";
    assert_same(&[
        (Format::Own, own, c),
        (Format::Own, ndjson, phone),
        (Format::Own, own, ctx(GOOGLEBOT, &salt, 3)),
        (Format::Own, "{\"site\":", c),
        (Format::Plausible, plausible, c),
        (Format::Plausible, engagement, phone),
        (Format::Pixel, pixel, c),
        (Format::Own, own, phone),
        (Format::Plausible, upper_plausible, c),
        (Format::Pixel, upper_pixel, c),
    ]);
}

#[test]
fn site_registry_and_many_sites_give_the_same_batches() {
    let salt = DailySalt::derive(b"test secret", NOW);
    let sites = SiteRegistry::new([(
        "a.com".to_owned(),
        SiteConfig {
            hostnames: vec!["a.com".into()],
            plan: "free".into(),
        },
    )]);
    let mut c = ctx(CHROME, &salt, 9);
    c.sites = Some(&sites);
    let registry = r#"[{"site":"a.com","url":"https://www.a.com/"},{"site":" A.Com","url":"https://a.com/"},{"site":"a.com","url":"https://evil.com/"},{"site":"b.com","url":"https://b.com/"}]"#;
    // More distinct sites than the visitor slots, interleaved, so hashes are both
    // remembered and recomputed.
    let many: String = (0..3 * VISITOR_SLOTS)
        .map(|i| {
            let s = (i * 7) % (VISITOR_SLOTS + 5);
            format!("{{\"site\":\"s{s}.com\",\"url\":\"https://s{s}.com/{i}\"}}\n")
        })
        .collect();
    assert_same(&[
        (Format::Own, registry, c),
        (Format::Own, &many, ctx(CHROME, &salt, 4)),
    ]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Arbitrary mixes of well-formed and odd events: both paths agree.
    #[test]
    fn generated_bodies_give_the_same_batches(
        lines in proptest::collection::vec(
            (0usize..4, "[a-c]{1,2}", "[ -~]{0,12}", proptest::option::of("[a-z/:. ?=&_]{0,24}"),
             proptest::option::of(0u32..3000)),
            1..40),
    ) {
        let salt = DailySalt::derive(b"test secret", NOW);
        let body: String = lines
            .iter()
            .map(|(site, path, junk, referrer, w)| {
                let mut l = String::from("{");
                if *site > 0 {
                    l += &format!("\"site\":\"s{site}.com\",");
                }
                l += &format!("\"url\":{},", serde_json::json!(format!("https://s{site}.com/{path}?utm_source={junk}")));
                if let Some(r) = referrer {
                    l += &format!("\"referrer\":{},", serde_json::json!(r));
                }
                if let Some(w) = w {
                    l += &format!("\"screen_width\":{w},\"props\":{{\"k\":{}}},", serde_json::json!(junk));
                }
                l += "\"name\":\"pageview\"}\n";
                l
            })
            .collect();
        assert_same(&[(Format::Own, &body, ctx(CHROME, &salt, 5)), (Format::Own, &body, ctx(IPHONE, &salt, 6))]);
    }
}
