//! End-to-end tests of [`Pipeline`]: every format, partial acceptance, bots, the site
//! registry, and a property test that no row carries the IP address or the user agent.

use proptest::prelude::*;

use super::*;
use crate::{parse_pixel, visitor_id, SiteConfig};

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
                      (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
const NOW: i64 = 1_700_000_000_000;

fn salt() -> &'static DailySalt {
    Box::leak(Box::new(DailySalt::derive(b"test secret", NOW)))
}

fn ctx(ua: &'static str) -> RequestContext<'static> {
    RequestContext {
        received_at_ms: NOW,
        client_ip: "203.0.113.7",
        user_agent: ua,
        country: "de",
        region: "BE",
        city: "Berlin",
        id_seed: [42; 16],
        salt: salt(),
        sites: None,
    }
}

fn run(format: Format, body: &str, ctx: &RequestContext<'_>) -> Result<Outcome<'static>> {
    let body = Box::leak(body.as_bytes().to_vec().into_boxed_slice());
    Pipeline::new(PipelineConfig::default()).process(format, body, ctx)
}

fn indexes(out: &Outcome<'_>) -> (Vec<u32>, Vec<(usize, String)>) {
    let acc = out
        .accepted
        .iter()
        .map(|e| u32::from_be_bytes(e.event_id[12..].try_into().unwrap()))
        .collect();
    let rej = out
        .rejected
        .iter()
        .map(|r| (r.index, r.error.field().to_owned()))
        .collect();
    (acc, rej)
}

#[test]
fn plausible_end_to_end() {
    let out = run(
        Format::Plausible,
        r#"{"n":"pageview","u":"https://www.example.com/pricing?utm_source=news&utm_medium=email&x=1#top",
            "d":"example.com,other.com","r":"https://www.google.com/search?q=x","w":390,"p":{"plan":"pro"}}"#,
        &ctx(CHROME),
    )
    .unwrap();
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    assert_eq!(out.bots, 0);
    let ev = &out.accepted[0];
    assert_eq!(ev.site_id, "example.com");
    assert_eq!(ev.name, "pageview");
    assert_eq!(ev.hostname, "example.com");
    assert_eq!(ev.pathname, "/pricing");
    assert_eq!((&*ev.utm_source, &*ev.utm_medium), ("news", "email"));
    assert_eq!(ev.referrer_host, "google.com");
    assert_eq!(ev.referrer_source, "Google");
    assert_eq!(
        (&*ev.country, &*ev.region, &*ev.city),
        ("DE", "BE", "Berlin")
    );
    assert!(!ev.browser.is_empty() && !ev.os.is_empty());
    assert_eq!(ev.screen_width, 390);
    assert_eq!(ev.device, device_class("desktop", Some(390)));
    assert_eq!(ev.received_at_ms, NOW);
    assert_eq!(ev.event_id, event_id(&[42; 16], 0));
    assert_eq!(
        ev.visitor_id,
        visitor_id(salt(), "example.com", "203.0.113.7", CHROME)
    );
    assert_eq!(ev.props, vec![("plan".into(), "pro".into())]);
}

#[test]
fn own_format_end_to_end_with_partial_acceptance() {
    let body = r#"[
        {"site":"a.com","url":"https://a.com/x","ttfb_ms":100,"cls":0.1,"scroll_depth":30},
        {"url":"https://a.com/no-site"},
        {"site":"a.com","url":"ftp://a.com/"},
        {"site":"a.com","url":"https://a.com/y","referrer":"https://a.com/x"},
        {"site":"a.com","url":"https://a.com/z","lcp_ms":-1}
    ]"#;
    let out = run(Format::Own, body, &ctx(CHROME)).unwrap();
    let (acc, rej) = indexes(&out);
    let seed_mask = u32::from_be_bytes(event_id(&[42; 16], 0)[12..].try_into().unwrap());
    assert_eq!(acc, vec![seed_mask, 3 ^ seed_mask]);
    assert_eq!(
        rej,
        vec![(1, "site".into()), (2, "url".into()), (4, "lcp_ms".into())]
    );
    assert_eq!(out.accepted[0].timings.ttfb_ms, Some(100));
    assert_eq!(out.accepted[0].timings.cls, Some(0.1));
    assert_eq!(out.accepted[0].scroll_depth, Some(30));
    // A self-referral is no referrer.
    assert_eq!(out.accepted[1].referrer_host, "");
    // Same site, IP and UA: same visitor.
    assert_eq!(out.accepted[0].visitor_id, out.accepted[1].visitor_id);
    assert_ne!(out.accepted[0].event_id, out.accepted[1].event_id);
}

#[test]
fn ndjson_end_to_end() {
    let body = "{\"site\":\"a.com\",\"url\":\"https://a.com/1\"}\r\n\r\n{bad\n{\"site\":\"b.com\",\"url\":\"https://b.com/2\"}\n";
    let out = run(Format::Own, body, &ctx(CHROME)).unwrap();
    assert_eq!(out.accepted.len(), 2);
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(out.rejected[0].index, 2);
    // Different sites: different visitors for the same person.
    assert_ne!(out.accepted[0].visitor_id, out.accepted[1].visitor_id);
}

#[test]
fn pixel_end_to_end() {
    let q = "site=a.com&url=https%3A%2F%2Fa.com%2Fp%C3%A9%3Futm_campaign%3Dspring&referrer=https%3A%2F%2Fnews.ycombinator.com%2F&w=1920&p.k=v";
    let out = run(Format::Pixel, q, &ctx(CHROME)).unwrap();
    let ev = &out.accepted[0];
    assert_eq!(ev.hostname, "a.com");
    assert_eq!(ev.utm_campaign, "spring");
    assert_eq!(ev.referrer_host, "news.ycombinator.com");
    assert_eq!(ev.screen_width, 1920);
    assert_eq!(ev.props, vec![("k".into(), "v".into())]);
    // process_raw with a query borrowed from elsewhere gives the same row.
    let parsed = parse_pixel(q, &Limits::default()).unwrap();
    let mut p = Pipeline::new(PipelineConfig::default());
    assert_eq!(
        p.process_raw(parsed, &ctx(CHROME)).unwrap().accepted[0],
        *ev
    );
}

#[test]
fn request_level_errors_pass_through() {
    let e = run(Format::Own, "{\"site\":", &ctx(CHROME)).unwrap_err();
    assert_eq!(e.field(), "body");
    let e = run(Format::Plausible, "[]", &ctx(CHROME)).unwrap_err();
    assert_eq!(e.field(), "body");
}

#[test]
fn bots_are_counted_not_rejected() {
    let body = r#"[{"site":"a.com","url":"https://a.com/"},{"site":"a.com"},{"site":"a.com","url":"https://a.com/b"}]"#;
    let out = run(Format::Own, body, &ctx(GOOGLEBOT)).unwrap();
    assert!(out.accepted.is_empty());
    assert_eq!(out.bots, 2);
    // What the wire format rejected is still reported.
    assert_eq!(indexes(&out).1, vec![(1, "url".into())]);
}

#[test]
fn site_registry() {
    let sites = SiteRegistry::new([(
        "a.com".to_owned(),
        SiteConfig {
            hostnames: vec!["a.com".into()],
            plan: "free".into(),
        },
    )]);
    let mut c = ctx(CHROME);
    c.sites = Some(Box::leak(Box::new(sites)));
    let body = r#"[{"site":"a.com","url":"https://www.a.com/"},{"site":"a.com","url":"https://evil.com/"},{"site":"b.com","url":"https://b.com/"}]"#;
    let out = run(Format::Own, body, &c).unwrap();
    assert_eq!(out.accepted.len(), 1);
    assert_eq!(out.rejected.len(), 2);
    for r in &out.rejected {
        assert_eq!(r.error.code(), "unknown_site", "{r:?}");
    }
}

#[test]
fn site_ids_are_trimmed_and_ascii_lowercased_before_hashing_and_storing() {
    let one = |format: Format, body: &str, c: &RequestContext<'_>| {
        let out = run(format, body, c).unwrap();
        assert!(out.rejected.is_empty(), "{body}: {:?}", out.rejected);
        out.accepted.into_iter().next().unwrap()
    };
    let c = ctx(CHROME);
    // The same visitor on the same site, whatever the case of the id.
    let upper = one(
        Format::Plausible,
        r#"{"d":"Example.COM","u":"https://example.com/"}"#,
        &c,
    );
    let lower = one(
        Format::Plausible,
        r#"{"d":"example.com","u":"https://example.com/"}"#,
        &c,
    );
    assert_eq!(
        (&*upper.site_id, &*lower.site_id),
        ("example.com", "example.com")
    );
    assert_eq!(upper.visitor_id, lower.visitor_id);
    assert_eq!(
        upper.visitor_id,
        visitor_id(salt(), "example.com", "203.0.113.7", CHROME)
    );
    // An id that is canonical already is borrowed from the body, not copied.
    assert!(matches!(lower.site_id, Cow::Borrowed(_)));
    // Every format trims ASCII whitespace and lowercases ASCII letters.
    for (format, body) in [
        (Format::Own, r#"{"site":"A.com ","url":"https://a.com/"}"#),
        (Format::Own, r#"{"site":"\t a.COM\r\n","url":"https://a.com/"}"#),
        (Format::Own, "{\"site\":\"a.com\",\"url\":\"https://a.com/\"}\n{\"site\":\" A.com\",\"url\":\"https://a.com/\"}"),
        (Format::Plausible, r#"{"d":" A.Com ,b.com","u":"https://a.com/"}"#),
        (Format::Pixel, "site=+A.COM%09&url=https%3A%2F%2Fa.com%2F"),
        (Format::Pixel, "site=A.com&url=https%3A%2F%2Fa.com%2F"),
    ] {
        let out = run(format, body, &c).unwrap();
        assert!(out.rejected.is_empty(), "{body}: {:?}", out.rejected);
        for ev in &out.accepted {
            assert_eq!(ev.site_id, "a.com", "{body}");
            assert_eq!(ev.visitor_id, visitor_id(salt(), "a.com", "203.0.113.7", CHROME));
        }
    }
    // Other characters are kept as sent, as the registry keeps them.
    let ev = one(
        Format::Own,
        r#"{"site":"ÄB.COM","url":"https://a.com/"}"#,
        &c,
    );
    assert_eq!(ev.site_id, "Äb.com");
    // Nothing left after trimming: the error of an empty (absent) site.
    let missing = |format: Format, body: &str| {
        let out = run(format, body, &c).unwrap();
        assert!(out.accepted.is_empty(), "{body}");
        out.rejected
    };
    let empty = missing(Format::Own, r#"{"site":"","url":"https://a.com/"}"#);
    assert!(
        matches!(&empty[..], [Rejection { index: 0, error: Error::Missing { field } }] if field == "site"),
        "{empty:?}"
    );
    for (format, body) in [
        (Format::Own, r#"{"site":" \t\r\n","url":"https://a.com/"}"#),
        (Format::Own, r#"{"site":" ","url":"https://a.com/"}"#),
        (Format::Plausible, r#"{"d":" ,a.com","u":"https://a.com/"}"#),
        (Format::Pixel, "site=+%20&url=https%3A%2F%2Fa.com%2F"),
    ] {
        assert_eq!(missing(format, body), empty, "{body}");
    }
}

#[test]
fn a_registered_site_is_stored_under_its_canonical_id() {
    let sites = SiteRegistry::new([(
        "A.com".to_owned(),
        SiteConfig {
            hostnames: vec!["a.com".into()],
            plan: "free".into(),
        },
    )]);
    let mut c = ctx(CHROME);
    c.sites = Some(Box::leak(Box::new(sites)));
    let body = r#"[{"site":"A.COM","url":"https://a.com/"},{"site":" a.com ","url":"https://a.com/"},{"site":"B.com","url":"https://a.com/"}]"#;
    let out = run(Format::Own, body, &c).unwrap();
    let ids: Vec<&str> = out.accepted.iter().map(|e| &*e.site_id).collect();
    assert_eq!(ids, ["a.com", "a.com"]);
    assert_eq!(out.accepted[0].visitor_id, out.accepted[1].visitor_id);
    assert_eq!(out.rejected.len(), 1);
    let reason = out.rejected[0].error.to_problem().reason;
    assert!(reason.contains("site \"b.com\" is not"), "{reason}");
}

#[test]
fn a_huge_ua_cache_capacity_is_capped() {
    let p = Pipeline::new(PipelineConfig {
        ua_cache_capacity: usize::MAX,
        ..PipelineConfig::default()
    });
    assert!(
        p.ua_cache.capacity() <= 1 << 16,
        "{}",
        p.ua_cache.capacity()
    );
}

#[test]
fn country_is_two_letters_or_empty() {
    for (given, stored) in [
        ("us", "US"),
        ("GB", "GB"),
        ("aa", "AA"),
        ("zZ", "ZZ"),
        ("", ""),
        ("USA", ""),
        ("1A", ""),
        ("é", ""),
        ("[a", ""),
    ] {
        let mut c = ctx(CHROME);
        c.country = given;
        let out = run(Format::Own, r#"{"site":"a","url":"https://a.com/"}"#, &c).unwrap();
        assert_eq!(out.accepted[0].country, stored, "{given:?}");
    }
}

#[test]
fn rows_own_their_strings_after_into_owned() {
    let out = run(
        Format::Own,
        r#"{"site":"a","url":"https://a.com/p"}"#,
        &ctx(CHROME),
    )
    .unwrap();
    let owned: Event<'static> = out.accepted[0].clone().into_owned();
    assert_eq!(owned, out.accepted[0]);
}

#[test]
fn plausible_engagement_event() {
    let out = run(
        Format::Plausible,
        r#"{"n":"engagement","sd":64,"d":"a.com","u":"https://a.com/post","p":{},"e":8123,"v":22}"#,
        &ctx(CHROME),
    )
    .unwrap();
    let ev = &out.accepted[0];
    assert_eq!(ev.name, "engagement");
    assert_eq!((ev.scroll_depth, ev.engagement_ms), (Some(64), Some(8123)));
    assert_eq!(ev.pathname, "/post");
}

#[test]
fn one_pipeline_serves_many_requests_like_fresh_ones() {
    let big: String = (0..50)
        .map(|i| format!("{{\"site\":\"a.com\",\"url\":\"https://a.com/{i}\",\"props\":{{\"k\":\"{i}\"}}}}\n"))
        .collect();
    let requests = [
        (Format::Own, big.as_str()),
        (Format::Plausible, r#"{"d":"a.com","u":"https://a.com/p"}"#),
        (Format::Own, "{\"site\":"),
        (Format::Pixel, "site=a.com&url=https%3A%2F%2Fa.com%2Fq"),
        (Format::Own, r#"[{"site":"a.com","url":"https://a.com/x"}]"#),
        (Format::Own, big.as_str()),
    ];
    let mut shared = Pipeline::new(PipelineConfig::default());
    for (format, body) in requests {
        let fresh = run(format, body, &ctx(CHROME));
        let mut b = body.as_bytes().to_vec();
        let reused = shared.process(format, &mut b, &ctx(CHROME));
        assert_eq!(reused, fresh, "{format:?} {body}");
    }
}

/// Services keep a pipeline per worker thread or move it into a task.
#[test]
fn pipeline_and_parser_are_send() {
    fn send<T: Send>() {}
    send::<Pipeline>();
    send::<crate::Parser>();
    send::<Outcome<'static>>();
}

/// Every string of a row, for the privacy property.
fn strings<'e>(e: &'e Event<'_>) -> Vec<&'e str> {
    let mut v = vec![
        &*e.site_id,
        &*e.name,
        &*e.hostname,
        &*e.pathname,
        &*e.referrer_host,
        &*e.referrer_source,
        &*e.utm_source,
        &*e.utm_medium,
        &*e.utm_campaign,
        &*e.utm_content,
        &*e.utm_term,
        &*e.country,
        &*e.region,
        &*e.city,
        &*e.browser,
        &*e.browser_version,
        &*e.os,
        &*e.os_version,
        &*e.device,
    ];
    for (k, val) in &e.props {
        v.push(k);
        v.push(val);
    }
    v
}

/// A salt of another day than the request's receive time is refused before anything
/// is parsed, by every entry point, as the caller's bug (`Error::Context`, field
/// `salt`), and nothing reaches the batcher; a salt of the same UTC day passes at any
/// hour of it, up to the last millisecond.
#[test]
fn a_salt_of_another_day_is_the_callers_bug() {
    use crate::{BatchConfig, Batcher, DAY_MS};
    let day_start = day_of(NOW) * DAY_MS;
    let today = DailySalt::derive(b"test secret", day_start);
    let body = r#"{"site":"example.com","url":"https://example.com/"}"#;
    // The salt of the day before and of the day after: refused.
    for (salt_at, received_at) in [(day_start - 1, day_start), (day_start, day_start + DAY_MS)] {
        let salt = DailySalt::derive(b"test secret", salt_at);
        let c = RequestContext {
            received_at_ms: received_at,
            salt: &salt,
            ..ctx(CHROME)
        };
        let mut p = Pipeline::new(PipelineConfig::default());
        let mut batcher = Batcher::new(BatchConfig::default());
        let mut batches = 0;
        let mut on_batch = |_: arrow_array::RecordBatch| batches += 1;
        let errors = [
            // Checked before parsing: a malformed body is not what is reported.
            p.process(Format::Own, &mut b"not json".to_vec(), &c)
                .map(|_| ()),
            p.process_raw(
                parse_pixel("site=a.com&url=u", &Limits::default()).unwrap(),
                &c,
            )
            .map(|_| ()),
            p.process_into(
                Format::Own,
                &mut body.as_bytes().to_vec(),
                &c,
                &mut batcher,
                received_at,
                &mut on_batch,
            )
            .map(|_| ()),
            p.process_slice_into(
                Format::Own,
                body.as_bytes(),
                &c,
                &mut batcher,
                received_at,
                &mut on_batch,
            )
            .map(|_| ()),
            p.process_raw_into(
                parse_pixel("site=a.com&url=u", &Limits::default()).unwrap(),
                &c,
                &mut batcher,
                received_at,
                &mut on_batch,
            )
            .map(|_| ()),
        ];
        for e in errors {
            let e = e.unwrap_err();
            assert!(matches!(e, Error::Context { .. }), "{e:?}");
            assert_eq!((e.field(), e.code()), ("salt", "context"));
            assert!(e.is_caller_bug());
            let (salt_date, received_date) = (salt.date(), date_string(day_of(received_at)));
            assert_ne!(salt_date, received_date);
            assert!(
                e.to_string().contains(&format!(
                    "the salt is for {salt_date} but the request was received on {received_date}"
                )),
                "{e}"
            );
        }
        assert!(batcher.is_empty());
        assert_eq!(batches, 0);
    }
    // The same day's salt: accepted from its first to its last millisecond.
    for received_at in [day_start, NOW, day_start + DAY_MS - 1] {
        let c = RequestContext {
            received_at_ms: received_at,
            salt: &today,
            ..ctx(CHROME)
        };
        let out = run(Format::Own, body, &c).unwrap();
        assert_eq!(out.accepted.len(), 1);
    }
    // A client's error is never the caller's bug.
    let e = run(Format::Own, "not json", &ctx(CHROME)).unwrap_err();
    assert!(!e.is_caller_bug(), "{e:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// The IP and the user agent go into the hashes only: no field of a row (nor its
    /// JSON form) contains either.
    #[test]
    fn rows_never_contain_ip_or_user_agent(
        ip in "[0-9a-f:.]{8,39}",
        ua in prop_oneof![
            "[ -~]{8,80}",
            "Mozilla/5\\.0 \\([A-Za-z0-9 ;._]{8,40}\\) [A-Za-z]{3,10}/[0-9.]{1,12}",
        ],
        path in "[a-z0-9/]{0,20}",
        prop in "[a-z0-9 ]{0,12}",
    ) {
        let body = format!(
            r#"{{"site":"shop.example","url":"https://shop.example/{path}?utm_source=s","props":{{"k":"{prop}"}}}}"#
        );
        let region = "Hesse";
        let city = "Frankfurt";
        let others = [body.as_str(), region, city, "DE"];
        prop_assume!(others.iter().all(|o| !o.contains(&ip) && !o.contains(&ua)));
        prop_assume!(!ua.contains(&ip) && !ip.contains(&ua));
        let salt = DailySalt::derive(b"k", NOW);
        let c = RequestContext {
            received_at_ms: NOW, client_ip: &ip, user_agent: &ua, country: "DE",
            region, city, id_seed: [1; 16], salt: &salt, sites: None,
        };
        let mut b = body.clone().into_bytes();
        let out = Pipeline::new(PipelineConfig::default()).process(Format::Own, &mut b, &c).unwrap();
        prop_assert_eq!(out.accepted.len() + out.bots, 1);
        for ev in &out.accepted {
            for s in strings(ev) {
                prop_assert!(!s.contains(&ip) && !s.contains(&ua), "{:?} in {:?}", s, ev);
            }
            let json = serde_json::to_string(ev).unwrap();
            prop_assert!(!json.contains(&ip), "ip in {}", json);
            prop_assert!(!json.contains(&ua), "ua in {}", json);
        }
    }
}
