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
//! Site ids and hostnames are compared case-insensitively (stored lowercase). The
//! pipeline stores an event's site id in the same form (ASCII whitespace trimmed,
//! ASCII letters lowercased, other characters as sent), so a
//! registered site's rows carry its id as the registry holds it. A pattern
//! `*.example.com` matches any subdomain (`a.example.com`, `a.b.example.com`) but not
//! `example.com` itself: list both when both serve pages. The hostname checked is the
//! normalized one (after the `www.` policy), so list hostnames in that form.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::quota::{self, Plan};

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
        b => !b.iter().any(u8::is_ascii_uppercase),
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
    fn parse(p: &str) -> Option<Pattern> {
        let p = p.trim_end_matches('.').to_ascii_lowercase();
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
    #[serde(default)]
    sites: BTreeMap<String, SiteConfig>,
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
    /// A registry of these sites. Site ids are lowercased. Call
    /// [`SiteRegistry::validate`] (deserializing does it for you): an unknown plan or a
    /// malformed hostname pattern is kept here and reported there; such a pattern never
    /// matches.
    pub fn new(sites: impl IntoIterator<Item = (String, SiteConfig)>) -> Self {
        let mut invalid = Vec::new();
        let sites = sites
            .into_iter()
            .map(|(id, config)| {
                let id = id.to_ascii_lowercase();
                if id.is_empty() {
                    invalid.push(Error::invalid("sites", "a site id is empty"));
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
                (id, Entry { config, patterns })
            })
            .collect();
        SiteRegistry { sites, invalid }
    }

    /// The first problem found when the registry was built, if any.
    pub fn validate(&self) -> Result<()> {
        match self.invalid.first() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// The configuration of `site` (case-insensitive).
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

    fn entry(&self, site: &str) -> Option<&Entry> {
        if site.bytes().any(|b| b.is_ascii_uppercase()) {
            self.sites.get(&site.to_ascii_lowercase())
        } else {
            self.sites.get(site)
        }
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
}
