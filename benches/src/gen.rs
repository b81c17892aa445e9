//! A deterministic, seeded generator of realistic page views.
//!
//! Every benchmark, the load generator of `compare` and other crates' tests draw their
//! data from here, so "the same events" means the same bytes everywhere. The shape
//! follows `shared/BASELINES.md`: a few hundred sites with Zipf-distributed traffic,
//! ordinary analytics URLs (some with UTM tags and other query parameters), 70% of
//! events with a referrer (search, social, HN/GitHub, other sites, internal
//! navigation), 30% with web-vitals timings, 10% with props, ~30 real browser user
//! agents plus a few percent bots; mean NDJSON line about 200 bytes.
//!
//! The user agent and the client IP are request headers, not body fields, so a
//! [`Record`] carries `(user_agent, ip, body)`. Visitors are modelled: a visitor keeps
//! its user agent, IP and screen width, so visitor ids repeat as on a real site.
//!
//! Streaming: [`Generator`] is an iterator and keeps O(sites) state, so 10⁷ events
//! never sit in memory unless the caller collects them.
//!
//! ```
//! use benches::gen::{Generator, GenConfig, WireFormat};
//!
//! let mut g = Generator::new(GenConfig { seed: 7, ..GenConfig::default() });
//! let r = g.next_record(WireFormat::Ndjson);
//! assert!(r.body.starts_with(b"{\"site\":"));
//! // Same seed, same bytes.
//! let mut h = Generator::new(GenConfig { seed: 7, ..GenConfig::default() });
//! assert_eq!(h.next_record(WireFormat::Ndjson), r);
//! ```

use serde::Serialize;

use crate::gen_data::{
    Ua, BOTS, BRANDS, CAMPAIGNS, CUSTOM_EVENTS, DESKTOP_WIDTHS, MOBILE_WIDTHS, PATH_WORDS,
    PROP_SETS, REFERRER_SITES, SEARCH_ENGINES, SOCIAL, TABLET_WIDTHS, TLDS, UAS, UTM_CONTENTS,
    UTM_MEDIUMS, UTM_SOURCES,
};

use crate::rng::mix;
pub use crate::rng::{SplitMix64, Zipf};

/// Generator settings. The defaults give the shape described in the module docs.
#[derive(Debug, Clone)]
pub struct GenConfig {
    /// Seed: the same seed gives the same events, byte for byte.
    pub seed: u64,
    /// Number of sites. Default 300.
    pub sites: usize,
    /// Zipf exponent of traffic across sites. Default 1.1.
    pub site_zipf: f64,
    /// Distinct visitors (UA + IP pairs). Default 50 000.
    pub visitors: usize,
    /// Share of visitors that are bots. Default 0.03.
    pub bot_share: f64,
    /// Share of events with a referrer. Default 0.70.
    pub referrer_share: f64,
    /// Share of events with web-vitals timings. Default 0.30.
    pub timings_share: f64,
    /// Share of events with props. Default 0.10.
    pub props_share: f64,
    /// Share of page URLs with UTM tags. Default 0.15.
    pub utm_share: f64,
    /// `ts` of the first event, Unix ms. Default 2026-11-23 00:00 UTC.
    pub start_ms: i64,
    /// Mean gap between events' `ts`, ms. Default 10.
    pub mean_gap_ms: u64,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 1,
            sites: 300,
            site_zipf: 1.1,
            visitors: 50_000,
            bot_share: 0.03,
            referrer_share: 0.70,
            timings_share: 0.30,
            props_share: 0.10,
            utm_share: 0.15,
            start_ms: 1_795_392_000_000,
            mean_gap_ms: 10,
        }
    }
}

/// Which wire format the body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFormat {
    /// Our own format, one JSON object (one NDJSON line, without the newline).
    Ndjson,
    /// Plausible's Events API body (`n`, `u`, `d`, `r`, `w`, `p`).
    Plausible,
}

impl std::str::FromStr for WireFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ndjson" | "own" => Ok(WireFormat::Ndjson),
            "plausible" => Ok(WireFormat::Plausible),
            _ => Err(format!(
                "unknown format {s:?}: expected ndjson or plausible"
            )),
        }
    }
}

/// One generated request: the headers that matter and the body of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The `User-Agent` header.
    pub user_agent: &'static str,
    /// The client IP, as text (IPv4 or IPv6).
    pub ip: String,
    /// Whether the user agent is one of the generator's bots (ingest-core should drop it).
    pub bot: bool,
    /// One event in the chosen format, without a trailing newline.
    pub body: Vec<u8>,
}

/// One page view, before serialization. Fields in our own format's spelling.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PageView {
    /// Site id (its main domain).
    pub site: String,
    /// Full page URL.
    pub url: String,
    /// Event name.
    pub name: &'static str,
    /// Referrer URL, absent for direct traffic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    /// Screen width, px.
    pub screen_width: u16,
    /// Client time, Unix ms.
    pub ts: i64,
    /// Time to first byte, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttfb_ms: Option<u32>,
    /// First contentful paint, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fcp_ms: Option<u32>,
    /// Largest contentful paint, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lcp_ms: Option<u32>,
    /// Interaction to next paint, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inp_ms: Option<u32>,
    /// Load event, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_ms: Option<u32>,
    /// Cumulative layout shift.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cls: Option<f32>,
    /// Custom properties, in order.
    #[serde(skip_serializing_if = "Props::is_empty")]
    pub props: Props,
}

/// Ordered string → string props (serialized as a JSON object).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Props(pub Vec<(&'static str, String)>);

impl Props {
    /// No pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Props {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// Plausible's field names for the same event (`r` is `null` when direct, as the
/// Plausible tracker sends it).
#[derive(Serialize)]
struct PlausibleBody<'p> {
    n: &'static str,
    u: &'p str,
    d: &'p str,
    r: Option<&'p str>,
    w: u16,
    #[serde(skip_serializing_if = "Props::is_empty")]
    p: &'p Props,
}

/// The generator: an endless, deterministic stream of [`Record`]s.
#[derive(Debug, Clone)]
pub struct Generator {
    cfg: GenConfig,
    rng: SplitMix64,
    site_zipf: Zipf,
    path_zipf: Zipf,
    ua_cdf: Vec<f64>,
    ts: i64,
}

/// Distinct page paths per site (Zipf over them).
const PATHS_PER_SITE: usize = 200;

impl Generator {
    /// A generator for `cfg`.
    pub fn new(cfg: GenConfig) -> Self {
        let mut acc = 0.0;
        let mut ua_cdf: Vec<f64> = UAS
            .iter()
            .map(|u| {
                acc += u.weight;
                acc
            })
            .collect();
        for c in &mut ua_cdf {
            *c /= acc;
        }
        Generator {
            rng: SplitMix64::new(mix(cfg.seed ^ 0x5EED)),
            site_zipf: Zipf::new(cfg.sites, cfg.site_zipf),
            path_zipf: Zipf::new(PATHS_PER_SITE, 1.0),
            ts: cfg.start_ms,
            ua_cdf,
            cfg,
        }
    }

    /// The domain of site `i` (stable for a seed).
    pub fn site_domain(&self, i: usize) -> String {
        let h = mix(self.cfg.seed.wrapping_mul(31).wrapping_add(i as u64) ^ 0xD0_3A1A);
        let a = BRANDS[(h % BRANDS.len() as u64) as usize];
        let b = PATH_WORDS[((h >> 16) % PATH_WORDS.len() as u64) as usize];
        let tld = TLDS[((h >> 32) % TLDS.len() as u64) as usize];
        // The index keeps domains distinct even when the words collide.
        format!("{a}{b}{i}.{tld}")
    }

    /// The next page view and its request headers.
    pub fn next_view(&mut self) -> (PageView, &'static str, String, bool) {
        let visitor = self.rng.below(self.cfg.visitors.max(1) as u64);
        let vh = mix(visitor ^ mix(self.cfg.seed));
        let bot = (vh % 10_000) as f64 / 10_000.0 < self.cfg.bot_share;
        let (ua, device) = if bot {
            (
                BOTS[((vh >> 20) % BOTS.len() as u64) as usize],
                Device::Desktop,
            )
        } else {
            let u = ((vh >> 11) as f64) / (1u64 << 53) as f64;
            let i = self.ua_cdf.partition_point(|&c| c <= u).min(UAS.len() - 1);
            let Ua { ua, device, .. } = UAS[i];
            (ua, device)
        };
        let ip = visitor_ip(vh);
        let screen_width = match device {
            Device::Desktop => DESKTOP_WIDTHS[((vh >> 40) % DESKTOP_WIDTHS.len() as u64) as usize],
            Device::Mobile => MOBILE_WIDTHS[((vh >> 40) % MOBILE_WIDTHS.len() as u64) as usize],
            Device::Tablet => TABLET_WIDTHS[((vh >> 40) % TABLET_WIDTHS.len() as u64) as usize],
        };

        let site_i = self.site_zipf.sample(&mut self.rng);
        let site = self.site_domain(site_i);
        let www = mix(site_i as u64 ^ 0x777).is_multiple_of(3);
        let host = if www {
            format!("www.{site}")
        } else {
            site.clone()
        };
        let path_rank = self.path_zipf.sample(&mut self.rng);
        let mut url = format!("https://{host}{}", site_path(site_i, path_rank));
        if self.rng.chance(self.cfg.utm_share) {
            self.push_utm(&mut url);
        } else if self.rng.chance(0.06) {
            let (k, v) = match self.rng.below(4) {
                0 => ("page", format!("{}", 2 + self.rng.below(9))),
                1 => ("ref", (*self.rng.pick(BRANDS)).to_owned()),
                2 => ("gclid", format!("Cj0KCQiA{:016x}", self.rng.next_u64())),
                _ => ("fbclid", format!("IwAR{:020x}", self.rng.next_u64() >> 4)),
            };
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(k);
            url.push('=');
            url.push_str(&v);
        }

        let referrer = if self.rng.chance(self.cfg.referrer_share) {
            Some(self.referrer(&host, site_i))
        } else {
            None
        };
        let name = if self.rng.chance(0.05) {
            *self.rng.pick(CUSTOM_EVENTS)
        } else {
            "pageview"
        };
        self.ts += self.rng.below(2 * self.cfg.mean_gap_ms + 1) as i64;

        let mut v = PageView {
            site,
            url,
            name,
            referrer,
            screen_width,
            ts: self.ts,
            ttfb_ms: None,
            fcp_ms: None,
            lcp_ms: None,
            inp_ms: None,
            load_ms: None,
            cls: None,
            props: Props::default(),
        };
        if self.rng.chance(self.cfg.timings_share) {
            let ttfb = self.rng.lognormal(180.0, 0.7).clamp(5.0, 20_000.0);
            let fcp = ttfb + self.rng.lognormal(600.0, 0.6).clamp(10.0, 30_000.0);
            let lcp = fcp + self.rng.lognormal(400.0, 0.8).clamp(0.0, 30_000.0);
            let load = lcp + self.rng.lognormal(300.0, 0.9).clamp(0.0, 60_000.0);
            v.ttfb_ms = Some(ttfb as u32);
            v.fcp_ms = Some(fcp as u32);
            v.lcp_ms = Some(lcp as u32);
            v.load_ms = Some(load as u32);
            // Not every page sees an interaction.
            if self.rng.chance(0.6) {
                v.inp_ms = Some(self.rng.lognormal(120.0, 0.7).clamp(8.0, 5_000.0) as u32);
            }
            let cls = (self.rng.lognormal(0.05, 1.2).min(2.0) * 1000.0).round() / 1000.0;
            v.cls = Some(cls as f32);
        }
        if self.rng.chance(self.cfg.props_share) {
            let set = *self.rng.pick(PROP_SETS);
            for (k, vals) in set {
                v.props.0.push((k, (*self.rng.pick(vals)).to_owned()));
            }
        }
        (v, ua, ip, bot)
    }

    /// The next record, serialized in `format`.
    pub fn next_record(&mut self, format: WireFormat) -> Record {
        let (view, user_agent, ip, bot) = self.next_view();
        let mut body = Vec::with_capacity(256);
        write_event(&view, format, &mut body);
        Record {
            user_agent,
            ip,
            bot,
            body,
        }
    }

    /// Appends `n` events as NDJSON (`\n` after each line) to `out`; returns the
    /// number of bot events among them (by the generator's labelling).
    pub fn fill_ndjson(&mut self, n: usize, out: &mut Vec<u8>) -> usize {
        let mut bots = 0;
        for _ in 0..n {
            let (view, _, _, bot) = self.next_view();
            bots += usize::from(bot);
            write_event(&view, WireFormat::Ndjson, out);
            out.push(b'\n');
        }
        bots
    }

    fn push_utm(&mut self, url: &mut String) {
        let source = *self.rng.pick(UTM_SOURCES);
        let medium = *self.rng.pick(UTM_MEDIUMS);
        let campaign = *self.rng.pick(CAMPAIGNS);
        url.push_str("?utm_source=");
        url.push_str(source);
        url.push_str("&utm_medium=");
        url.push_str(medium);
        url.push_str("&utm_campaign=");
        url.push_str(campaign);
        if self.rng.chance(0.3) {
            url.push_str("&utm_content=");
            url.push_str(self.rng.pick::<&str>(UTM_CONTENTS));
        }
        if self.rng.chance(0.15) {
            url.push_str("&utm_term=");
            url.push_str(self.rng.pick::<&str>(PATH_WORDS));
            url.push('+');
            url.push_str(self.rng.pick::<&str>(PATH_WORDS));
        }
    }

    fn referrer(&mut self, host: &str, site_i: usize) -> String {
        let r = self.rng.unit();
        if r < 0.45 {
            let (engine, q) = *self.rng.pick(SEARCH_ENGINES);
            if q {
                format!("https://{engine}/search?q={}", self.rng.pick(PATH_WORDS))
            } else {
                format!("https://{engine}/")
            }
        } else if r < 0.65 {
            let s = *self.rng.pick(SOCIAL);
            format!("https://{s}/")
        } else if r < 0.80 {
            // Internal navigation: a self-referral the pipeline drops.
            let p = self.path_zipf.sample(&mut self.rng);
            format!("https://{host}{}", site_path(site_i, p))
        } else if r < 0.90 {
            let s = *self.rng.pick(REFERRER_SITES);
            format!("https://{s}")
        } else {
            let other = self.site_zipf.sample(&mut self.rng);
            format!("https://{}{}", self.site_domain(other), site_path(other, 0))
        }
    }
}

impl Iterator for Generator {
    type Item = Record;

    /// Own-format records; use [`Generator::next_record`] for Plausible.
    fn next(&mut self) -> Option<Record> {
        Some(self.next_record(WireFormat::Ndjson))
    }
}

/// Serializes one event in `format`, without a newline.
pub fn write_event(view: &PageView, format: WireFormat, out: &mut Vec<u8>) {
    // Writing plain strings and numbers into a Vec cannot fail.
    let r = match format {
        WireFormat::Ndjson => serde_json::to_writer(&mut *out, view),
        WireFormat::Plausible => serde_json::to_writer(
            &mut *out,
            &PlausibleBody {
                n: view.name,
                u: &view.url,
                d: &view.site,
                r: view.referrer.as_deref(),
                w: view.screen_width,
                p: &view.props,
            },
        ),
    };
    r.expect("serializing a page view into memory");
}

/// `n` events as one NDJSON buffer (for benchmarks at small sizes).
pub fn ndjson(seed: u64, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 210);
    Generator::new(GenConfig {
        seed,
        ..GenConfig::default()
    })
    .fill_ndjson(n, &mut out);
    out
}

/// The device class a generated user agent stands for (sets the screen width).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// Desktop or laptop.
    Desktop,
    /// Phone.
    Mobile,
    /// Tablet.
    Tablet,
}

/// A stable client IP for a visitor hash: 90% IPv4 from public ranges, 10% IPv6.
fn visitor_ip(vh: u64) -> String {
    let h = mix(vh ^ 0x1F);
    if h.is_multiple_of(10) {
        format!(
            "2a02:{:x}:{:x}:{:x}::{:x}",
            (h >> 8) & 0xffff,
            (h >> 24) & 0xffff,
            (h >> 40) & 0xffff,
            (h >> 50) & 0xfff
        )
    } else {
        // Avoid 0, 10, 127 and 224+ as first octet: private, loopback, multicast.
        let a = [
            23, 31, 46, 62, 77, 81, 89, 91, 94, 109, 151, 176, 185, 188, 195, 203,
        ][(h >> 4) as usize % 16];
        format!(
            "{a}.{}.{}.{}",
            (h >> 12) & 0xff,
            (h >> 20) & 0xff,
            1 + (h >> 28) % 254
        )
    }
}

/// Path number `rank` of site `site_i`: rank 0 is the home page; the rest come from a
/// handful of site sections with slugs, ids and nested docs pages.
fn site_path(site_i: usize, rank: usize) -> String {
    if rank == 0 {
        return "/".to_owned();
    }
    let h = mix(((site_i as u64) << 20) ^ rank as u64 ^ 0xA7);
    let w = |k: u32| PATH_WORDS[((h >> k) % PATH_WORDS.len() as u64) as usize];
    match rank {
        1 => "/pricing".to_owned(),
        2 => "/about".to_owned(),
        3 => "/blog".to_owned(),
        4 => "/contact".to_owned(),
        _ => match h % 6 {
            0 | 1 => format!("/blog/{}-{}-{}", w(8), w(16), w(24)),
            2 => format!("/products/{}/{}", w(8), (h >> 32) % 100_000),
            3 => format!("/docs/{}/{}", w(8), w(16)),
            4 => format!("/{}/{}", w(8), w(16)),
            _ => format!("/category/{}/page/{}", w(8), 1 + (h >> 32) % 12),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        assert_eq!(ndjson(3, 500), ndjson(3, 500));
        assert_ne!(ndjson(3, 500), ndjson(4, 500));
    }

    #[test]
    fn shape_matches_the_baselines() {
        let n = 20_000;
        let buf = ndjson(1, n);
        let lines: Vec<&[u8]> = buf
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines.len(), n);
        let mean = buf.len() as f64 / n as f64 - 1.0;
        assert!((170.0..=230.0).contains(&mean), "mean line {mean} bytes");
        let share = |needle: &str| {
            lines
                .iter()
                .filter(|l| std::str::from_utf8(l).unwrap().contains(needle))
                .count() as f64
                / n as f64
        };
        let r = share("\"referrer\":");
        assert!((0.67..0.73).contains(&r), "referrer share {r}");
        let t = share("\"ttfb_ms\":");
        assert!((0.27..0.33).contains(&t), "timings share {t}");
        let p = share("\"props\":");
        assert!((0.08..0.12).contains(&p), "props share {p}");
        for l in &lines {
            let v: serde_json::Value = serde_json::from_slice(l).unwrap();
            assert!(v["url"].as_str().unwrap().starts_with("https://"));
        }
    }

    #[test]
    fn bots_are_a_few_percent_and_sites_are_zipf() {
        let mut g = Generator::new(GenConfig::default());
        let recs: Vec<Record> = (0..20_000)
            .map(|_| g.next_record(WireFormat::Ndjson))
            .collect();
        let bots = recs.iter().filter(|r| r.bot).count() as f64 / recs.len() as f64;
        assert!((0.01..0.06).contains(&bots), "bot share {bots}");
        let uas: std::collections::HashSet<_> = recs.iter().map(|r| r.user_agent).collect();
        assert!(uas.len() >= 30, "{} distinct user agents", uas.len());
        let top = g.site_domain(0);
        let top_share = recs
            .iter()
            .filter(|r| {
                let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
                v["site"] == top.as_str()
            })
            .count() as f64
            / recs.len() as f64;
        assert!(top_share > 0.08, "top site share {top_share}");
    }

    #[test]
    fn plausible_bodies_use_plausible_names() {
        let mut g = Generator::new(GenConfig::default());
        for _ in 0..200 {
            let r = g.next_record(WireFormat::Plausible);
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            for k in ["n", "u", "d", "r", "w"] {
                assert!(v.get(k).is_some(), "missing {k}");
            }
            assert!(v.get("site").is_none());
        }
    }

    #[test]
    fn zipf_rank_zero_is_the_most_frequent() {
        let z = Zipf::new(100, 1.0);
        let mut rng = SplitMix64::new(9);
        let mut counts = [0usize; 100];
        for _ in 0..50_000 {
            counts[z.sample(&mut rng)] += 1;
        }
        assert!(counts[0] > counts[1] && counts[1] > counts[10] && counts[10] > counts[99]);
    }
}
