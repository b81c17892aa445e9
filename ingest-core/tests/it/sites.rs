//! The site registry: TOML (sink) and JSON (edge) loading, wildcards, refusals.

use ingest_core::{Error, SiteConfig, SiteRegistry};

const TOML: &str = r#"
[sites."example.com"]
hostnames = ["example.com", "*.example.com"]
plan = "growth"

[sites."Blog.Example.org"]
plan = "free"
"#;

#[test]
fn loads_from_toml_and_checks_hostnames() {
    let r: SiteRegistry = toml::from_str(TOML).unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(
        r.check("example.com", "example.com").unwrap().plan,
        "growth"
    );
    assert!(r.check("example.com", "docs.example.com").is_ok());
    assert!(r.check("example.com", "a.b.EXAMPLE.com").is_ok());
    assert!(r.check("EXAMPLE.COM", "example.com").is_ok());
    // No hostnames listed: any hostname.
    assert!(r.check("blog.example.org", "anything.test").is_ok());
    assert_eq!(
        r.get("blog.example.org").unwrap().plan_def().unwrap().name,
        "free"
    );
}

#[test]
fn loads_from_json() {
    let r: SiteRegistry = serde_json::from_str(
        r#"{"sites": {"shop.test": {"hostnames": ["shop.test"], "plan": "business"}}}"#,
    )
    .unwrap();
    assert_eq!(r.get("shop.test").unwrap().hostnames, ["shop.test"]);
    let empty: SiteRegistry = serde_json::from_str("{}").unwrap();
    assert!(empty.is_empty());
}

#[test]
fn unknown_site_and_disallowed_host_are_refused() {
    let r: SiteRegistry = toml::from_str(TOML).unwrap();
    let e = r.check("other.com", "other.com").unwrap_err();
    assert!(matches!(e, Error::UnknownSite { .. }));
    assert_eq!(e.field(), "site");
    assert_eq!(e.code(), "unknown_site");
    let e = r.check("example.com", "evil.com").unwrap_err();
    assert_eq!(e.field(), "url");
    assert!(e.to_string().contains("evil.com"), "{e}");
    // The wildcard does not match the bare parent or a lookalike.
    assert!(r.check("example.com", "badexample.com").is_err());
    assert!(r.check("example.com", "").is_err());
}

#[test]
fn wildcard_alone_does_not_cover_the_apex() {
    let r = SiteRegistry::new([(
        "a.com".to_string(),
        SiteConfig {
            hostnames: vec!["*.a.com".into()],
            plan: "free".into(),
        },
    )]);
    r.validate().unwrap();
    assert!(r.check("a.com", "www.a.com").is_ok());
    assert!(r.check("a.com", "a.com").is_err());
}

#[test]
fn unknown_plan_and_bad_patterns_fail_at_load() {
    let e = toml::from_str::<SiteRegistry>("[sites.\"a.com\"]\nplan = \"gold\"\n").unwrap_err();
    assert!(e.to_string().contains("unknown plan \"gold\""), "{e}");
    let e = serde_json::from_str::<SiteRegistry>(r#"{"sites": {"a.com": {"plan": "platinum"}}}"#)
        .unwrap_err();
    assert!(e.to_string().contains("sites.a.com.plan"), "{e}");
    let e = toml::from_str::<SiteRegistry>(
        "[sites.\"a.com\"]\nplan = \"free\"\nhostnames = [\"a.*.com\"]\n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("a.*.com"), "{e}");
    // A missing plan and an unknown key are errors too.
    assert!(toml::from_str::<SiteRegistry>("[sites.\"a.com\"]\n").is_err());
    assert!(
        toml::from_str::<SiteRegistry>("[sites.\"a.com\"]\nplan = \"free\"\nhost = \"x\"\n")
            .is_err()
    );
}

/// Both file formats go through the same canonicalization of keys: a key written with
/// spaces and capitals is its site, and two keys that are one site are refused at
/// load, naming the site and both keys (a JSON document's repeated key included, which
/// a map would have merged silently).
#[test]
fn keys_are_canonical_and_colliding_keys_fail_at_load() {
    let r: SiteRegistry = toml::from_str(
        "[sites.\" Shop.Example \"]\nplan = \"free\"\nhostnames = [\" Shop.Example\"]\n",
    )
    .unwrap();
    assert!(r.check("shop.example", "shop.example").is_ok());
    let r: SiteRegistry =
        serde_json::from_str(r#"{"sites": {" Shop.Example ": {"plan": "free"}}}"#).unwrap();
    assert_eq!(r.iter().next().unwrap().0, "shop.example");

    let toml_err = toml::from_str::<SiteRegistry>(
        "[sites.\"Example.com\"]\nplan = \"growth\"\n[sites.\"example.com\"]\nplan = \"free\"\n",
    )
    .unwrap_err()
    .to_string();
    let json_err = serde_json::from_str::<SiteRegistry>(
        r#"{"sites": {"Example.com": {"plan": "growth"}, "example.com": {"plan": "free"}}}"#,
    )
    .unwrap_err()
    .to_string();
    for e in [&toml_err, &json_err] {
        assert!(
            e.contains("sites.example.com") && e.contains(r#""Example.com" and "example.com""#),
            "{e}"
        );
    }
    let e = serde_json::from_str::<SiteRegistry>(
        r#"{"sites": {"a.com": {"plan": "growth"}, "a.com": {"plan": "free"}}}"#,
    )
    .unwrap_err();
    assert!(e.to_string().contains(r#""a.com" and "a.com""#), "{e}");
    let e = toml::from_str::<SiteRegistry>("[sites.\"  \"]\nplan = \"free\"\n").unwrap_err();
    assert!(e.to_string().contains("empty once"), "{e}");
}
