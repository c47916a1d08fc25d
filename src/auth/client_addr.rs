//! The client address behind trusted proxies.
//!
//! Input: the TCP peer and the request headers. Output: the address the allowlists judge.
//! The one forwarding header the proxies write (`[trust] forwarded_header`: `X-Forwarded-For`
//! or RFC 7239 `Forwarded`) is believed only when the TCP peer is a configured trusted proxy;
//! the client is then the rightmost address in it that is not a trusted proxy. The other
//! header is never read: a proxy passes it on as the client sent it. Never fails: anything
//! unreadable falls back to the nearest trusted hop, which allowlists then refuse unless they
//! list the proxy itself (fail closed).

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

use super::ip_allow;
use crate::config::trust::ForwardedHeader;

/// The compiled `[trust] trusted_proxies` and `forwarded_header`.
#[derive(Debug, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: ForwardedHeader,
}

/// Most forwarded hops read from headers; a longer chain is cut on the left (the part a
/// client controls), so a request cannot make this loop long.
const MAX_HOPS: usize = 32;

impl TrustedProxies {
    /// Compiles the list; `Err(entry)` names an entry that is not an address or CIDR.
    pub fn new(entries: &[String], header: ForwardedHeader) -> Result<TrustedProxies, String> {
        let mut nets = Vec::with_capacity(entries.len());
        for entry in entries {
            nets.push(ip_allow::parse_net(entry).ok_or_else(|| entry.clone())?);
        }
        Ok(TrustedProxies { nets, header })
    }

    /// True when `addr` is one of the trusted proxies.
    pub fn trusts(&self, addr: IpAddr) -> bool {
        ip_allow::contains(&self.nets, addr)
    }

    /// The client address of a request from `peer` with `headers`.
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.ip();
        if !self.trusts(peer) {
            // An untrusted peer's forwarding headers are the peer's own claims: ignored.
            return peer;
        }
        let hops = forwarded_hops(headers, self.header);
        let mut nearest = peer;
        for hop in hops.iter().rev() {
            match hop {
                Some(addr) if self.trusts(*addr) => nearest = *addr,
                Some(addr) => return *addr,
                // `unknown`, an obfuscated name or garbage: stop at the last trusted hop.
                None => return nearest,
            }
        }
        nearest
    }
}

/// Hop addresses from `header`, left to right, at most [`MAX_HOPS`] (the rightmost ones).
/// `None` marks an entry that is not an address.
fn forwarded_hops(headers: &HeaderMap, header: ForwardedHeader) -> Vec<Option<IpAddr>> {
    let mut hops: Vec<Option<IpAddr>> = Vec::new();
    if header == ForwardedHeader::Forwarded {
        for value in headers.get_all(http::header::FORWARDED) {
            let Ok(text) = value.to_str() else {
                hops.push(None);
                continue;
            };
            for element in text.split(',') {
                let node = element.split(';').find_map(|pair| {
                    let (k, v) = pair.trim().split_once('=')?;
                    k.trim().eq_ignore_ascii_case("for").then_some(v.trim())
                });
                hops.push(node.and_then(parse_node));
            }
        }
    } else {
        for value in headers.get_all("x-forwarded-for") {
            let Ok(text) = value.to_str() else {
                hops.push(None);
                continue;
            };
            hops.extend(text.split(',').map(|s| parse_node(s.trim())));
        }
    }
    let excess = hops.len().saturating_sub(MAX_HOPS);
    hops.drain(..excess);
    hops
}

/// Reads `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:80`, optionally quoted.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = node.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    let inner = node.strip_prefix('[')?.split(']').next()?;
    inner.parse::<IpAddr>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(entries: &[&str]) -> TrustedProxies {
        proxies_with(entries, ForwardedHeader::XForwardedFor)
    }

    fn proxies_with(entries: &[&str], header: ForwardedHeader) -> TrustedProxies {
        let e: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        TrustedProxies::new(&e, header).unwrap()
    }

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, value.parse().unwrap());
        h
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 4444)
    }

    #[test]
    fn ignores_forwarded_for_from_untrusted_peer() {
        let p = proxies(&["10.0.0.0/8"]);
        let h = headers("x-forwarded-for", "52.9.169.38");
        assert_eq!(
            p.client(peer("198.51.100.7"), &h),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn takes_rightmost_untrusted_hop() {
        let p = proxies(&["10.0.0.0/8"]);
        let h = headers("x-forwarded-for", "1.1.1.1, 52.9.169.38, 10.0.0.5");
        assert_eq!(
            p.client(peer("10.0.0.9"), &h),
            "52.9.169.38".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn reads_forwarded_header_with_ipv6_and_port() {
        let p = proxies_with(&["127.0.0.1"], ForwardedHeader::Forwarded);
        let h = headers(
            "forwarded",
            "for=192.0.2.1, for=\"[2001:db8::7]:4711\";proto=https",
        );
        assert_eq!(
            p.client(peer("127.0.0.1"), &h),
            "2001:db8::7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn unreadable_hop_falls_back_to_nearest_trusted_hop() {
        let p = proxies(&["127.0.0.1"]);
        let h = headers("x-forwarded-for", "52.9.169.38, garbage");
        assert_eq!(
            p.client(peer("127.0.0.1"), &h),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn only_the_header_the_proxies_write_is_read() {
        // The proxy appends to X-Forwarded-For and passes the client's own `Forwarded` on.
        let mut h = headers("x-forwarded-for", "198.51.100.9");
        h.insert("forwarded", "for=52.9.169.38".parse().unwrap());
        let xff = proxies(&["127.0.0.2"]);
        assert_eq!(
            xff.client(peer("127.0.0.2"), &h),
            "198.51.100.9".parse::<IpAddr>().unwrap()
        );
        // And the other way round, for a proxy that writes `Forwarded`.
        let mut h = headers("forwarded", "for=198.51.100.9");
        h.insert("x-forwarded-for", "52.9.169.38".parse().unwrap());
        let rfc = proxies_with(&["127.0.0.2"], ForwardedHeader::Forwarded);
        assert_eq!(
            rfc.client(peer("127.0.0.2"), &h),
            "198.51.100.9".parse::<IpAddr>().unwrap()
        );
        // Without its header, the nearest trusted hop: the proxy.
        let only_xff = headers("x-forwarded-for", "52.9.169.38");
        assert_eq!(
            rfc.client(peer("127.0.0.2"), &only_xff),
            "127.0.0.2".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn trusted_peer_without_header_is_the_client() {
        let p = proxies(&["127.0.0.1"]);
        assert_eq!(
            p.client(peer("127.0.0.1"), &HeaderMap::new()),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
    }
}
