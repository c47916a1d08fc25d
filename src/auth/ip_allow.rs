//! Source-address allowlists: addresses, CIDRs and the built-in Hyperproof presets.
//!
//! Input: the client address (see [`super::client_addr`]). Output: allowed or
//! [`AuthError::AddressNotAllowed`] (403). Runs before the body is read. Never logs the
//! list's contents per request.

use std::net::IpAddr;

use ipnet::IpNet;

use super::AuthError;

/// Hyperproof's US egress addresses: the vendor doc's 52.9.169.38 plus the newer monitoring
/// page's 20.184.128.53 and 52.159.252.1 (which replaces 52.9.169.38). See
/// docs/vendor-setup.md for the sources.
const HYPERPROOF_US: &[&str] = &["52.9.169.38", "20.184.128.53", "52.159.252.1"];
/// Hyperproof's EU egress addresses: the vendor doc's 98.67.233.122 plus 9.141.172.46 and
/// 4.185.45.100 from the newer page.
const HYPERPROOF_EU: &[&str] = &["98.67.233.122", "9.141.172.46", "4.185.45.100"];
/// Hyperproof's Gov egress addresses: the vendor doc's 52.250.33.250 plus the newer page's
/// old and new pairs (4.154.201.6 → 4.155.77.155, 4.246.104.90 → 4.155.78.5).
const HYPERPROOF_GOV: &[&str] = &[
    "52.250.33.250",
    "4.154.201.6",
    "4.155.77.155",
    "4.246.104.90",
    "4.155.78.5",
];

/// The addresses behind a preset name, or `None` when `name` is no preset.
pub fn preset(name: &str) -> Option<Vec<&'static str>> {
    match name {
        "hyperproof-us" => Some(HYPERPROOF_US.to_vec()),
        "hyperproof-eu" => Some(HYPERPROOF_EU.to_vec()),
        "hyperproof-gov" => Some(HYPERPROOF_GOV.to_vec()),
        "hyperproof" => Some([HYPERPROOF_US, HYPERPROOF_EU, HYPERPROOF_GOV].concat()),
        _ => None,
    }
}

/// Parses one entry: an address (a host network) or a CIDR. An IPv4-mapped entry
/// (`::ffff:a.b.c.d`, or a CIDR of at least /96 inside `::ffff:0:0/96`) becomes the IPv4
/// address or network it maps, since clients are compared as IPv4 ([`contains`]) and the logs
/// print a dual-stack listener's IPv4 peers in that form.
pub fn parse_net(entry: &str) -> Option<IpNet> {
    let entry = entry.trim();
    let net = entry
        .parse::<IpNet>()
        .ok()
        .or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))?;
    Some(match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => v6
            .network()
            .to_ipv4_mapped()
            .and_then(|v4| ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).ok())
            .map_or(net, IpNet::V4),
        _ => net,
    })
}

/// Expands presets and parses every entry; `Err(entry)` names the first one that is neither.
pub fn parse_list(entries: &[String]) -> Result<Vec<IpNet>, String> {
    let mut nets = Vec::with_capacity(entries.len());
    for entry in entries {
        if let Some(addresses) = preset(entry.trim()) {
            nets.extend(addresses.into_iter().filter_map(parse_net));
        } else {
            nets.push(parse_net(entry).ok_or_else(|| entry.clone())?);
        }
    }
    Ok(nets)
}

/// True when `addr` is inside any of `nets`. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`)
/// is compared as the IPv4 address, as dual-stack sockets report IPv4 peers that way.
pub fn contains(nets: &[IpNet], addr: IpAddr) -> bool {
    let addr = match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    };
    nets.iter().any(|n| n.contains(&addr))
}

/// A compiled allowlist.
#[derive(Debug)]
pub struct IpAllow {
    nets: Vec<IpNet>,
}

impl IpAllow {
    /// Compiles `entries`; `Err(entry)` names an entry that is not an address, CIDR or preset.
    pub fn new(entries: &[String]) -> Result<IpAllow, String> {
        Ok(IpAllow {
            nets: parse_list(entries)?,
        })
    }

    /// Allows `client` when it is in the list.
    pub fn check(&self, client: IpAddr) -> Result<(), AuthError> {
        if contains(&self.nets, client) {
            Ok(())
        } else {
            Err(AuthError::AddressNotAllowed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(entries: &[&str]) -> IpAllow {
        let entries: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        IpAllow::new(&entries).unwrap()
    }

    #[test]
    fn union_preset_holds_every_region() {
        let a = allow(&["hyperproof"]);
        for ip in [
            "52.9.169.38",
            "98.67.233.122",
            "52.250.33.250",
            "4.155.78.5",
        ] {
            assert!(a.check(ip.parse().unwrap()).is_ok(), "{ip}");
        }
        assert!(a.check("52.9.169.39".parse().unwrap()).is_err());
    }

    #[test]
    fn regional_preset_excludes_other_regions() {
        let a = allow(&["hyperproof-eu"]);
        assert!(a.check("9.141.172.46".parse().unwrap()).is_ok());
        assert!(matches!(
            a.check("52.9.169.38".parse().unwrap()),
            Err(AuthError::AddressNotAllowed)
        ));
    }

    #[test]
    fn preset_can_be_extended_with_cidrs_of_both_families() {
        let a = allow(&["hyperproof-us", "203.0.113.0/24", "2001:db8::/32"]);
        assert!(a.check("203.0.113.77".parse().unwrap()).is_ok());
        assert!(a.check("2001:db8::5".parse().unwrap()).is_ok());
        assert!(a.check("2001:db9::5".parse().unwrap()).is_err());
    }

    #[test]
    fn ipv4_mapped_ipv6_peer_matches_ipv4_entry() {
        let a = allow(&["127.0.0.1"]);
        assert!(a.check("::ffff:127.0.0.1".parse().unwrap()).is_ok());
    }

    #[test]
    fn an_ipv4_mapped_entry_matches_the_ipv4_client_it_names() {
        // The form a dual-stack listener's logs print the client in.
        let a = allow(&["::ffff:127.0.0.4", "::FFFF:10.1.0.0/112"]);
        for ip in [
            "127.0.0.4",
            "::ffff:127.0.0.4",
            "10.1.2.3",
            "::ffff:10.1.255.255",
        ] {
            assert!(a.check(ip.parse().unwrap()).is_ok(), "{ip}");
        }
        for ip in ["127.0.0.5", "10.2.0.1", "::1"] {
            assert!(a.check(ip.parse().unwrap()).is_err(), "{ip}");
        }
        // Plain IPv6 entries are untouched.
        let v6 = allow(&["2001:db8::/96"]);
        assert!(v6.check("2001:db8::7".parse().unwrap()).is_ok());
    }

    #[test]
    fn rejects_unknown_entry() {
        let err = IpAllow::new(&["hyperproof-mars".to_owned()]).unwrap_err();
        assert_eq!(err, "hyperproof-mars");
    }
}
