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
    // the client itself and can be forged).
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(parse)
        .collect();
    let ip = hops
        .iter()
        .rev()
        .find(|ip| !trusted(**ip, proxies))
        .or(hops.first())
        .copied()
        .unwrap_or(peer);
    ClientInfo {
        ip,
        via_trusted_proxy: true,
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
}
