//! Who the client is: the socket peer, or — only when the peer is a trusted proxy —
//! `CF-Connecting-IP` or the rightmost untrusted `X-Forwarded-For` hop.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Where the request came from, as far as we can believe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client's IP address.
    pub ip: IpAddr,
    /// True when the peer is a trusted proxy (its geo headers are believed too).
    pub via_trusted_proxy: bool,
}

fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    proxies.iter().any(|n| n.contains(&ip))
}

/// Decides the client address of a request from `peer` with these headers.
pub fn client_info(peer: IpAddr, headers: &HeaderMap, proxies: &[IpNet]) -> ClientInfo {
    if !trusted(peer, proxies) {
        return ClientInfo {
            ip: peer,
            via_trusted_proxy: false,
        };
    }
    let parse = |v: &str| v.trim().parse::<IpAddr>().ok();
    if let Some(ip) = headers
        .get("cf-connecting-ip")
        .and_then(|v| v.to_str().ok())
        .and_then(parse)
    {
        return ClientInfo {
            ip,
            via_trusted_proxy: true,
        };
    }
    // Every X-Forwarded-For header, hops in order; walk from the right, skipping our
    // own proxies: the first other hop is the client (anything left of it is claimed by
    // the client itself and can be forged). All hops ours: the leftmost.
    let mut leftmost = None;
    let mut client = None;
    for hop in headers
        .get_all("x-forwarded-for")
        .iter()
        .rev()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.rsplit(','))
        .filter_map(parse)
    {
        if !trusted(hop, proxies) {
            client = Some(hop);
            break;
        }
        leftmost = Some(hop);
    }
    let ip = client.or(leftmost).unwrap_or(peer);
    ClientInfo {
        ip,
        via_trusted_proxy: true,
    }
}

/// An IP address as text, formatted on the stack: every request hashes its client's
/// address as text, and `to_string` allocated a `String` for it.
pub struct IpText {
    buf: [u8; IpText::MAX],
    len: usize,
}

impl IpText {
    /// The longest text an address formats to (`ffff:…:ffff:255.255.255.255`).
    const MAX: usize = 45;

    /// `ip` as [`std::fmt::Display`] writes it.
    pub fn new(ip: IpAddr) -> IpText {
        use std::io::Write;
        let mut buf = [0u8; Self::MAX];
        let mut rest = &mut buf[..];
        // Cannot fail: no address is longer than the buffer (tested below).
        let _ = write!(rest, "{ip}");
        let len = Self::MAX - rest.len();
        IpText { buf, len }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Display of an address writes ASCII only.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn untrusted_peer_cannot_spoof() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        let c = client_info(
            peer,
            &h(&[
                ("x-forwarded-for", "1.2.3.4"),
                ("cf-connecting-ip", "5.6.7.8"),
            ]),
            &proxies,
        );
        assert_eq!(c.ip, peer);
        assert!(!c.via_trusted_proxy);
    }

    #[test]
    fn trusted_proxy_rightmost_untrusted_hop() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let c = client_info(
            peer,
            &h(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.7")]),
            &proxies,
        );
        assert_eq!(c.ip, "1.2.3.4".parse::<IpAddr>().unwrap());
        let c = client_info(peer, &h(&[("cf-connecting-ip", "5.6.7.8")]), &proxies);
        assert_eq!(c.ip, "5.6.7.8".parse::<IpAddr>().unwrap());
        let c = client_info(peer, &h(&[]), &proxies);
        assert_eq!(c.ip, peer);
    }

    #[test]
    fn ip_text_is_display() {
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "::",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:255.255.255.255",
            "2001:db8::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(IpText::new(ip).as_str(), ip.to_string());
        }
    }

    #[test]
    fn forwarded_hops_across_headers_and_unusual_lists() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let ip = |pairs: &[(&'static str, &'static str)]| client_info(peer, &h(pairs), &proxies).ip;
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        // Several headers are one list, in order: the last header holds the nearest hops.
        let xff = "x-forwarded-for";
        assert_eq!(
            ip(&[(xff, "6.6.6.6, 1.2.3.4"), (xff, "10.0.0.7")]),
            a("1.2.3.4")
        );
        assert_eq!(
            ip(&[(xff, "1.2.3.4"), (xff, "9.9.9.9, 10.0.0.7")]),
            a("9.9.9.9")
        );
        // Every hop one of ours: the leftmost.
        assert_eq!(ip(&[(xff, "10.0.0.5, 10.0.0.7")]), a("10.0.0.5"));
        // Hops that are not addresses are skipped; none left: the peer.
        assert_eq!(ip(&[(xff, "1.2.3.4, garbage, 10.0.0.7")]), a("1.2.3.4"));
        assert_eq!(ip(&[(xff, "garbage, ")]), peer);
        assert_eq!(ip(&[(xff, " 2001:db8::1 ,10.1.1.1")]), a("2001:db8::1"));
    }
}
