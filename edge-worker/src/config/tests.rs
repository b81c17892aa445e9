//! Tests of the worker's configuration: defaults, every var parsed, and every bound.

use super::limits::{LimitVar, LIMIT_VARS};
use super::*;

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k| m.get(k).cloned()
}

#[test]
fn defaults_with_only_the_salt() {
    let c = EdgeConfig::from_vars(vars(&[("SALT_SECRET", "s")])).unwrap();
    assert!(c.sites.is_none() && c.usage.is_empty() && c.sink_url.is_none());
    assert_eq!(c.rate_limit, RateLimitConfig::default());
    assert_eq!((c.direct_flush_ms, c.direct_max_rows), (1000, 1000));
    assert_eq!(c.retry, Backoff::default());
    assert_eq!(
        c.limits,
        Limits {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            ..Limits::default()
        },
        "the limits are ingest-core's defaults but the body's"
    );
    assert_eq!(c.rate_limiter_period_secs, 10);
    assert_eq!(c.batches_url().unwrap_err().var, "SINK_URL");
}

#[test]
fn the_salt_is_required() {
    assert_eq!(
        EdgeConfig::from_vars(vars(&[("SALT_SECRET", " ")]))
            .unwrap_err()
            .var,
        "SALT_SECRET"
    );
}

#[test]
fn full_configuration() {
    let c = EdgeConfig::from_vars(vars(&[
        ("SALT_SECRET", "s"),
        ("SINK_URL", "http://127.0.0.1:1/"),
        (
            "SITES",
            r#"{"sites":{"Example.com":{"hostnames":["example.com"],"plan":"free"}}}"#,
        ),
        (
            "SITE_USAGE",
            r#"{"Example.com":{"month_to_date":5,"over_since_ms":7}}"#,
        ),
        ("RATE_LIMIT", r#"{"rate_per_sec":2,"burst":3}"#),
        ("MAX_EVENTS_PER_REQUEST", "3"),
        ("DIRECT_FLUSH_MS", "250"),
        ("QUEUE_RETRY_BASE_SECS", "5"),
        ("QUEUE_RETRY_MAX_SECS", "600"),
    ]))
    .unwrap();
    assert_eq!(c.batches_url().unwrap(), "http://127.0.0.1:1/v1/batches");
    assert_eq!(c.sites.unwrap().get("example.com").unwrap().plan, "free");
    assert_eq!(c.usage["example.com"].month_to_date, 5);
    assert_eq!(c.usage["example.com"].state().over_since_ms, Some(7));
    assert_eq!((c.rate_limit.rate_per_sec, c.rate_limit.burst), (2.0, 3));
    assert_eq!(c.direct_flush_ms, 250);
    assert_eq!(
        c.retry,
        Backoff {
            base_secs: 5,
            max_secs: 600
        }
    );
}

#[test]
fn malformed_values_name_their_variable() {
    for (var, value) in [
        ("SITES", r#"{"sites":{"a.com":{"plan":"gold"}}}"#),
        ("SITE_USAGE", "[]"),
        ("RATE_LIMIT", r#"{"rate":1}"#),
        ("DIRECT_FLUSH_MS", "-1"),
        ("DIRECT_MAX_ROWS", "x"),
        ("QUEUE_RETRY_BASE_SECS", "0"),
        ("QUEUE_RETRY_BASE_SECS", "43201"),
        ("QUEUE_RETRY_MAX_SECS", "5"),
        ("QUEUE_RETRY_MAX_SECS", "86400"),
        ("MAX_BODY_BYTES", "1e6"),
        ("MAX_EVENTS_PER_REQUEST", "ten"),
        ("MAX_URL_BYTES", "-2048"),
        ("MAX_PROP_VALUE_BYTES", "2 KiB"),
        ("RATE_LIMITER_PERIOD_SECS", "10s"),
    ] {
        let err = EdgeConfig::from_vars(vars(&[("SALT_SECRET", "s"), (var, value)])).unwrap_err();
        assert_eq!(err.var, var, "{err}");
    }
}

/// Every limit var lands in its field of ingest-core's `Limits`; the others keep
/// their defaults.
#[test]
fn limit_vars_set_the_pipeline_limits() {
    let c = EdgeConfig::from_vars(vars(&[
        ("SALT_SECRET", "s"),
        // A burst that admits the largest request (see the test below).
        ("RATE_LIMIT", r#"{"rate_per_sec":10,"burst":250}"#),
        ("MAX_BODY_BYTES", "65536"),
        ("MAX_EVENTS_PER_REQUEST", "250"),
        ("MAX_URL_BYTES", "4096"),
        ("MAX_REFERRER_BYTES", " 1024 "),
        ("MAX_NAME_BYTES", "64"),
        ("MAX_PROPS", "10"),
        ("MAX_PROP_KEY_BYTES", "100"),
        ("MAX_PROP_VALUE_BYTES", "8000"),
    ]))
    .unwrap();
    assert_eq!(
        c.limits,
        Limits {
            max_body_bytes: 65_536,
            max_events_per_request: 250,
            max_url_len: 4096,
            max_referrer_len: 1024,
            max_name_len: 64,
            max_props: 10,
            max_prop_key_len: 100,
            max_prop_value_len: 8000,
            ..Limits::default()
        }
    );
}

/// Each limit's bounds are inclusive: the bound itself is accepted, one past it is
/// refused naming the var and the bounds.
#[test]
fn limit_vars_are_bounded() {
    let limits = |var: &str, value: String| {
        EdgeConfig::from_vars(vars(&[
            ("SALT_SECRET", "s"),
            // A burst that admits the largest MAX_EVENTS_PER_REQUEST.
            ("RATE_LIMIT", r#"{"rate_per_sec":10,"burst":1000}"#),
            (var, &value),
        ]))
        .map(|c| c.limits)
    };
    for LimitVar {
        var,
        min,
        max,
        field,
    } in LIMIT_VARS
    {
        for ok in [min, max] {
            let mut l = limits(var, ok.to_string()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(*field(&mut l), ok, "{var}={ok}");
        }
        for bad in [min - 1, max + 1] {
            let err = limits(var, bad.to_string()).unwrap_err();
            assert_eq!(err.var, var, "{err}");
            assert!(
                err.reason.contains(&format!("{min} to {max}")),
                "{var}={bad}: {err}"
            );
        }
    }
    // The table covers the eight vars the docs list, each on its own field.
    let mut seen = Vec::new();
    for LimitVar { var, field, .. } in LIMIT_VARS {
        let mut l = Limits::default();
        *field(&mut l) = usize::MAX;
        assert_ne!(l, Limits::default(), "{var}");
        assert!(!seen.contains(&l), "{var} sets the field of another var");
        seen.push(l);
    }
    assert_eq!(seen.len(), 8);
}

/// A request of more events than the GCRA's burst is never admitted: a
/// configuration that allows such requests is refused, naming the var.
#[test]
fn events_per_request_over_the_burst_is_refused() {
    let cfg = |pairs: &[(&str, &str)]| {
        let mut all = vec![("SALT_SECRET", "s")];
        all.extend_from_slice(pairs);
        EdgeConfig::from_vars(vars(&all))
    };
    let err = cfg(&[("MAX_EVENTS_PER_REQUEST", "101")]).unwrap_err();
    assert_eq!(err.var, "MAX_EVENTS_PER_REQUEST", "{err}");
    assert!(err.reason.contains("burst is 100"), "{err}");
    let err = cfg(&[("RATE_LIMIT", r#"{"rate_per_sec":10,"burst":50}"#)]).unwrap_err();
    assert_eq!(
        err.var, "MAX_EVENTS_PER_REQUEST",
        "the default 100 over 50: {err}"
    );
    assert!(cfg(&[("MAX_EVENTS_PER_REQUEST", "100")]).is_ok());
    // No limiter, no such bound.
    let off = cfg(&[
        ("RATE_LIMIT", r#"{"rate_per_sec":0,"burst":1}"#),
        ("MAX_EVENTS_PER_REQUEST", "1000"),
    ]);
    assert_eq!(off.unwrap().limits.max_events_per_request, 1000);
}

/// `SITE_USAGE` keys are canonical site ids, as `SITES` keys and events' ids are.
#[test]
fn usage_seeds_are_keyed_by_canonical_site_id() {
    let usage = |json: &str| {
        EdgeConfig::from_vars(vars(&[("SALT_SECRET", "s"), ("SITE_USAGE", json)])).map(|c| c.usage)
    };
    let u = usage(r#"{" Example.COM\t": {"month_to_date": 7}}"#).unwrap();
    assert_eq!(u.keys().collect::<Vec<_>>(), ["example.com"]);
    assert_eq!(u["example.com"].month_to_date, 7);
    let err = usage(r#"{"a.com": {}, "A.com ": {}}"#).unwrap_err();
    assert_eq!(err.var, "SITE_USAGE");
    assert!(err.reason.contains("same site"), "{err}");
    let err = usage(r#"{" ": {"month_to_date": 1}}"#).unwrap_err();
    assert_eq!(err.var, "SITE_USAGE");
    assert!(err.reason.contains("empty"), "{err}");
    // The same key twice: a map would keep the second count without a word.
    let err =
        usage(r#"{"a.com": {"month_to_date": 1}, "a.com": {"month_to_date": 2}}"#).unwrap_err();
    assert_eq!(err.var, "SITE_USAGE");
    assert!(err.reason.contains("\"a.com\" is given twice"), "{err}");
    // Not an object at all.
    let err = usage("[]").unwrap_err();
    assert_eq!(err.var, "SITE_USAGE");
}

/// Cloudflare's Rate Limiting binding takes a period of 10 or 60 seconds only.
#[test]
fn the_rate_limiter_period_is_10_or_60() {
    let period = |v: &str| {
        EdgeConfig::from_vars(vars(&[
            ("SALT_SECRET", "s"),
            ("RATE_LIMITER_PERIOD_SECS", v),
        ]))
        .map(|c| c.rate_limiter_period_secs)
    };
    assert_eq!(period("10"), Ok(10));
    assert_eq!(period("60"), Ok(60));
    for bad in ["0", "1", "30", "61", "600"] {
        let err = period(bad).unwrap_err();
        assert_eq!(err.var, "RATE_LIMITER_PERIOD_SECS", "{err}");
        assert!(err.reason.contains("10 or 60"), "{err}");
    }
}
