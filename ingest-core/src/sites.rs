//! The site registry: which sites are known, which page hostnames each accepts, and
//! its plan.
//!
//! Services load it from a file: the sink from TOML, the edge from JSON. The shape is
//! the same; in TOML:
//!
//! ```toml
//! [sites."example.com"]
//! hostnames = ["example.com", "*.example.com"]   # empty or absent: any hostname
//! plan = "growth"                                # one of quota::PLANS
//!
//! [sites."blog.example.org"]
//! plan = "free"
//! ```
//!
//! and in JSON `{"sites": {"example.com": {"hostnames": ["example.com"], "plan": "growth"}}}`.
//! Deserializing validates: an unknown plan or a malformed hostname pattern is an error
//! at load, not at the first request.
//!
//! Site ids are stored in the canonical form the pipeline gives an event's site id
//! (ASCII whitespace trimmed, ASCII letters lowercased, other characters as sent: one
//! function, [`canonical_site_id`], does both), so a registered site's rows carry its
//! id as the registry holds it. Two keys that are one id once canonicalized
//! (`"Example.com"` and `"example.com"`) are an error at load, as is a key that is
//! empty once trimmed: neither could ever be told apart from, or match, an event.
//! Hostname patterns are trimmed and compared case-insensitively. A pattern
//! `*.example.com` matches any subdomain (`a.example.com`, `a.b.example.com`) but not
//! `example.com` itself: list both when both serve pages. The hostname checked is the
//! normalized one (after the `www.` policy), so list hostnames in that form.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result};
use crate::quota::{self, Plan};

/// A site id in the canonical form the pipeline stores (see `canonical_site_id`):
/// ASCII whitespace trimmed, ASCII letters lowercased; `None` when nothing is left. For
/// services that key their own tables by site id (e.g. the edge's usage seeds), so
/// that their keys match the events' `site_id`.
pub fn canonical_site(site: &str) -> Option<Cow<'_, str>> {
    canonical_site_id(Cow::Borrowed(site))
}

/// The canonical form of an event's site id, the one hashed into `visitor_id` and
/// stored in `site_id`: ASCII whitespace trimmed, ASCII letters lowercased (as
/// [`SiteRegistry::new`] stores its ids); other characters are kept as sent, since
/// Unicode lowercasing would disagree with the registry's keys (site ids are hostnames,
/// which are ASCII once punycoded). `None` when nothing is left: the site is absent.
/// An id that is canonical already is returned as it came (borrowed stays borrowed);
/// an owned one is fixed in place.
pub(crate) fn canonical_site_id(site: Cow<'_, str>) -> Option<Cow<'_, str>> {
    if is_canonical_site_id(&site) {
        return Some(site);
    }
    let canonical = match site {
        Cow::Borrowed(s) => {
            let s = s.trim_ascii();
            if s.bytes().any(|b| b.is_ascii_uppercase()) {
                Cow::Owned(s.to_ascii_lowercase())
            } else {
                Cow::Borrowed(s)
            }
        }
        Cow::Owned(mut s) => {
            s.truncate(s.trim_ascii_end().len());
            let lead = s.len() - s.trim_ascii_start().len();
            s.drain(..lead);
            s.make_ascii_lowercase();
            Cow::Owned(s)
        }
    };
    (!canonical.is_empty()).then_some(canonical)
}

/// True when `site` is its own canonical form and not empty (nearly every event): one
/// pass over its bytes, no move of the id (the common case of [`canonical_site_id`],
/// which the full pipeline pays per event).
#[inline]
pub(crate) fn is_canonical_site_id(site: &str) -> bool {
    match site.as_bytes() {
        [] => false,
        [first, .., last] if first.is_ascii_whitespace() || last.is_ascii_whitespace() => false,
        [only] if only.is_ascii_whitespace() => false,
        // A fold without an early exit, which the compiler vectorizes (`any`'s byte
        // loop with a branch per byte was 2% of the full path).
        b => !b.iter().fold(false, |up, c| up | c.is_ascii_uppercase()),
    }
}

/// One site's entry in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Page hostnames allowed for this site: exact (`example.com`) or a wildcard over
    /// subdomains (`*.example.com`). Empty means any hostname.
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// The plan's name, one of [`quota::PLANS`].
    pub plan: String,
}

impl SiteConfig {
    /// The site's [`Plan`] (`None` only for a registry built with
    /// [`SiteRegistry::new`] and not validated).
    pub fn plan_def(&self) -> Option<&'static Plan> {
        quota::plan(&self.plan)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Exact(String),
    /// `*.example.com` stored as `.example.com`.
    Suffix(String),
}

impl Pattern {
    /// The pattern of a `hostnames` entry, in the form hostnames are compared in:
    /// ASCII whitespace trimmed (as site ids are), the root's trailing dot dropped,
    /// ASCII letters lowercased. `None` for anything that is not a hostname or a
    /// `*.domain` wildcard.
    fn parse(p: &str) -> Option<Pattern> {
        let p = p.trim_ascii().trim_end_matches('.').to_ascii_lowercase();
        let (body, wild) = match p.strip_prefix("*.") {
            Some(rest) => (rest, true),
            None => (p.as_str(), false),
        };
        let ok = !body.is_empty()
            && !body.starts_with('.')
            && !body.contains("..")
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'));
        if !ok {
            return None;
        }
        Some(if wild {
            Pattern::Suffix(format!(".{body}"))
        } else {
            Pattern::Exact(body.to_owned())
        })
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            Pattern::Exact(h) => host.eq_ignore_ascii_case(h),
            Pattern::Suffix(s) => {
                host.len() > s.len()
                    && host.is_char_boundary(host.len() - s.len())
                    && host[host.len() - s.len()..].eq_ignore_ascii_case(s)
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    config: SiteConfig,
    patterns: Vec<Pattern>,
}

/// The known sites (see the module docs for the file format).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(try_from = "SitesFile")]
pub struct SiteRegistry {
    sites: BTreeMap<String, Entry>,
    /// Problems found when built by [`SiteRegistry::new`], reported by `validate`.
    invalid: Vec<Error>,
}

/// The file shape: `{ "sites": { "<site id>": SiteConfig } }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SitesFile {
    /// The entries as the file lists them, repeated keys included: a map would keep
    /// one of two equal JSON keys silently, [`SiteRegistry::new`] reports them.
    #[serde(default, deserialize_with = "map_entries")]
    sites: Vec<(String, SiteConfig)>,
}

/// A JSON object's members in the order written, a repeated key kept: a map keeps one
/// of two equal keys without a word, where a configuration must refuse them (what
/// would be meant cannot be known). For `#[serde(deserialize_with = ...)]`: the sites
/// file's `sites`, and the edge's `SITE_USAGE`.
pub fn map_entries<'de, D, V>(d: D) -> std::result::Result<Vec<(String, V)>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Entries<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> Visitor<'de> for Entries<V> {
        type Value = Vec<(String, V)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of site ids")
        }
        fn visit_map<A: MapAccess<'de>>(
            self,
            mut map: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            // The size hint comes from the input: not trusted for an allocation.
            let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
            while let Some(entry) = map.next_entry()? {
                out.push(entry);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Entries(std::marker::PhantomData))
}

impl TryFrom<SitesFile> for SiteRegistry {
    type Error = Error;
    fn try_from(f: SitesFile) -> Result<Self> {
        let r = SiteRegistry::new(f.sites);
        r.validate()?;
        Ok(r)
    }
}

impl SiteRegistry {
    /// A registry of these sites. Site ids are canonicalized as the pipeline
    /// canonicalizes an event's site id (ASCII whitespace trimmed, ASCII letters
    /// lowercased). Call [`SiteRegistry::validate`] (deserializing does it for you):
    /// these problems are kept here and reported there —
    ///
    /// - a site id empty once trimmed (field `sites`; the entry is dropped: no event
    ///   carries an empty site id);
    /// - two site ids that are one once canonicalized (field `sites.<id>`; the first
    ///   in iteration order is kept, so one site's configuration would be lost);
    /// - an unknown plan (field `sites.<id>.plan`);
    /// - a malformed hostname pattern (field `sites.<id>.hostnames`; it never matches).
    pub fn new(sites: impl IntoIterator<Item = (String, SiteConfig)>) -> Self {
        let mut invalid = Vec::new();
        // Each canonical id with the key it was written as (to name both in a
        // collision).
        let mut written_as: BTreeMap<String, String> = BTreeMap::new();
        let mut registry = BTreeMap::new();
        for (key, config) in sites {
            let Some(id) = canonical_site_id(Cow::Borrowed(&key)).map(Cow::into_owned) else {
                invalid.push(Error::invalid(
                    "sites",
                    format!("site id {key:?} is empty once ASCII whitespace is trimmed"),
                ));
                continue;
            };
            if let Some(first) = written_as.get(&id) {
                invalid.push(Error::invalid(
                    format!("sites.{id}"),
                    format!(
                        "site ids {first:?} and {key:?} are the same site once ASCII \
                         whitespace is trimmed and letters are lowercased: list it once"
                    ),
                ));
                continue;
            }
            if quota::plan(&config.plan).is_none() {
                let names: Vec<&str> = quota::PLANS.iter().map(|p| p.name).collect();
                invalid.push(Error::invalid(
                    format!("sites.{id}.plan"),
                    format!(
                        "unknown plan \"{}\" (known: {})",
                        config.plan,
                        names.join(", ")
                    ),
                ));
            }
            let patterns = config
                .hostnames
                .iter()
                .filter_map(|h| {
                    let p = Pattern::parse(h);
                    if p.is_none() {
                        invalid.push(Error::invalid(
                            format!("sites.{id}.hostnames"),
                            format!("\"{h}\" is not a hostname or a \"*.domain\" wildcard"),
                        ));
                    }
                    p
                })
                .collect();
            written_as.insert(id.clone(), key);
            registry.insert(id, Entry { config, patterns });
        }
        SiteRegistry {
            sites: registry,
            invalid,
        }
    }

    /// The first problem found when the registry was built, if any.
    pub fn validate(&self) -> Result<()> {
        match self.invalid.first() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// The configuration of `site` (looked up in its canonical form: case-insensitive,
    /// surrounding ASCII whitespace ignored).
    pub fn get(&self, site: &str) -> Option<&SiteConfig> {
        self.entry(site).map(|e| &e.config)
    }

    /// Checks that `site` is registered and that `hostname` (the page's normalized
    /// hostname) is allowed for it.
    ///
    /// Errors: [`Error::UnknownSite`] with field `"site"` for an unknown site, field
    /// `"url"` for a hostname the site does not allow.
    pub fn check(&self, site: &str, hostname: &str) -> Result<&SiteConfig> {
        let e = self.entry(site).ok_or_else(|| Error::UnknownSite {
            field: "site".into(),
            reason: format!("site \"{site}\" is not registered"),
        })?;
        let host = hostname.trim_end_matches('.');
        if e.config.hostnames.is_empty() || e.patterns.iter().any(|p| p.matches(host)) {
            Ok(&e.config)
        } else {
            Err(Error::UnknownSite {
                field: "url".into(),
                reason: format!("hostname \"{hostname}\" is not allowed for site \"{site}\""),
            })
        }
    }

    /// Number of sites.
    pub fn len(&self) -> usize {
        self.sites.len()
    }

    /// True when no site is registered.
    pub fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }

    /// The sites, by id.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &SiteConfig)> {
        self.sites.iter().map(|(k, e)| (k.as_str(), &e.config))
    }

    /// The entry of `site` in its canonical form (a canonical id, what the pipeline
    /// passes, costs one pass over its bytes and no copy).
    fn entry(&self, site: &str) -> Option<&Entry> {
        self.sites
            .get(canonical_site_id(Cow::Borrowed(site))?.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(hosts: &[&str], plan: &str) -> SiteConfig {
        SiteConfig {
            hostnames: hosts.iter().map(|s| s.to_string()).collect(),
            plan: plan.into(),
        }
    }

    #[test]
    fn patterns() {
        let p = Pattern::parse("*.Example.com").unwrap();
        assert!(p.matches("a.example.com"));
        assert!(p.matches("A.B.EXAMPLE.COM"));
        assert!(!p.matches("example.com"));
        assert!(!p.matches("badexample.com"));
        assert!(Pattern::parse("example.com.")
            .unwrap()
            .matches("example.com"));
        for bad in ["", "*", "*.", "a*.com", "ex ample.com", "..com", "*.*.com"] {
            assert!(Pattern::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn new_keeps_problems_for_validate() {
        let r = SiteRegistry::new([("a.com".to_string(), cfg(&["a.com"], "gold"))]);
        let e = r.validate().unwrap_err();
        assert_eq!(e.field(), "sites.a.com.plan");
        let r = SiteRegistry::new([("a.com".to_string(), cfg(&["a b"], "free"))]);
        assert_eq!(r.validate().unwrap_err().field(), "sites.a.com.hostnames");
        let r = SiteRegistry::new([("A.com".to_string(), cfg(&[], "free"))]);
        assert!(r.validate().is_ok());
        assert!(r.get("a.COM").is_some());
    }

    /// A key is stored as the pipeline stores an event's site id, by the same
    /// function: a key written with spaces or capitals matches the events of its site.
    #[test]
    fn keys_are_canonicalized_like_event_site_ids() {
        for key in [" example.com", "Example.COM\t", "\n EXAMPLE.com  "] {
            let r = SiteRegistry::new([(key.to_string(), cfg(&[], "free"))]);
            r.validate().unwrap();
            let expected = canonical_site_id(Cow::Borrowed(key)).unwrap();
            assert_eq!(expected, "example.com", "{key:?}");
            assert_eq!(
                r.iter().map(|(id, _)| id).collect::<Vec<_>>(),
                ["example.com"]
            );
            assert!(r.check("example.com", "any.test").is_ok(), "{key:?}");
        }
        // Lookups canonicalize too.
        let r = SiteRegistry::new([("example.com".to_string(), cfg(&[], "free"))]);
        assert!(r.get(" Example.com ").is_some());
        assert!(r.get("").is_none() && r.get("  ").is_none());
    }

    #[test]
    fn a_key_empty_once_trimmed_is_refused() {
        for key in ["", " ", "\t\r\n"] {
            let r = SiteRegistry::new([
                (key.to_string(), cfg(&[], "free")),
                ("a.com".to_string(), cfg(&[], "free")),
            ]);
            let e = r.validate().unwrap_err();
            assert_eq!((e.field(), e.code()), ("sites", "invalid"), "{key:?}");
            assert!(e.to_string().contains("empty once"), "{e}");
            // Not kept under an id no event can carry.
            assert_eq!(r.len(), 1);
        }
    }

    /// Two keys that are one site once canonicalized: an error naming both, not one
    /// configuration silently dropped.
    #[test]
    fn keys_equal_once_canonicalized_collide() {
        for (a, b) in [
            ("Example.com", "example.com"),
            ("example.com", " example.com"),
            ("example.com", "example.com"),
        ] {
            let r = SiteRegistry::new([
                (a.to_string(), cfg(&[], "growth")),
                (b.to_string(), cfg(&[], "free")),
            ]);
            let e = r.validate().unwrap_err();
            assert_eq!((e.field(), e.code()), ("sites.example.com", "invalid"));
            let reason = e.to_string();
            assert!(
                reason.contains(&format!("{a:?} and {b:?}")) && reason.contains("same site"),
                "{reason}"
            );
            // The first is kept (the registry is invalid, but usable as documented).
            assert_eq!(r.len(), 1);
            assert_eq!(r.get("example.com").unwrap().plan, "growth");
        }
    }

    #[test]
    fn hostname_patterns_are_trimmed_and_lowercased() {
        let p = Pattern::parse("  Example.COM.\t").unwrap();
        assert_eq!(p, Pattern::Exact("example.com".into()));
        let p = Pattern::parse(" *.Example.com ").unwrap();
        assert_eq!(p, Pattern::Suffix(".example.com".into()));
        assert!(Pattern::parse("   ").is_none());
        assert!(Pattern::parse(" * .example.com").is_none());
        let r = SiteRegistry::new([(
            "example.com".to_string(),
            cfg(&[" Example.com", "*.EXAMPLE.com "], "free"),
        )]);
        r.validate().unwrap();
        assert!(r.check("example.com", "example.com").is_ok());
        assert!(r.check("example.com", "www.example.com").is_ok());
        assert!(r.check("example.com", "example.org").is_err());
    }
}
