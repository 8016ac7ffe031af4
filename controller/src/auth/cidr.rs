//! CIDR blocks for `secret_id_bound_cidrs`, `token_bound_cidrs` and a secret ID's
//! `cidr_list`: parsing (a bare address is its own /32 or /128) and matching a client address.
//!
//! Pure. Must not decide what an unknown client address means: callers refuse it.

use std::net::IpAddr;

/// One parsed block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `192.0.2.7` (a /32), `2001:db8::/32`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("'{text}' is not a CIDR block such as 10.0.0.0/8 or 192.0.2.7"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix {
            None => max,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|length| *length <= max)
                .ok_or_else(|| format!("'{text}': the prefix length must be 0 to {max}"))?,
        };
        Ok(Self {
            network,
            prefix_len,
        })
    }

    /// Whether `address` lies inside the block (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(address),
            v4 => v4,
        };
        match (self.network, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

/// Checks every block of a list (400 material: the message names the bad one).
pub fn validate(blocks: &[String]) -> Result<(), String> {
    blocks
        .iter()
        .try_for_each(|block| Cidr::parse(block).map(drop))
}

/// Whether `address` may pass `blocks`: an empty list lets everyone through; a non-empty one
/// only a known address inside one of its blocks.
pub fn allows(blocks: &[String], address: Option<IpAddr>) -> bool {
    if blocks.is_empty() {
        return true;
    }
    let Some(address) = address else {
        return false;
    };
    blocks
        .iter()
        .filter_map(|block| Cidr::parse(block).ok())
        .any(|block| block.contains(address))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn blocks_match_their_addresses_only() {
        let block = Cidr::parse("127.0.0.1/32").expect("parse");
        assert!(block.contains(ip("127.0.0.1")));
        assert!(!block.contains(ip("127.0.0.2")));
        let wide = Cidr::parse("10.1.0.0/16").expect("parse");
        assert!(wide.contains(ip("10.1.255.3")));
        assert!(!wide.contains(ip("10.2.0.1")));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .expect("any")
                .contains(ip("203.0.113.9"))
        );
        let bare = Cidr::parse("192.0.2.7").expect("bare");
        assert!(bare.contains(ip("192.0.2.7")) && !bare.contains(ip("192.0.2.8")));
        // An IPv4 client seen through a dual-stack socket.
        assert!(block.contains(ip("::ffff:127.0.0.1")));
        let v6 = Cidr::parse("2001:db8::/32").expect("v6");
        assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
    }

    #[test]
    fn bad_blocks_are_named() {
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0/8", "::/129", ""] {
            let error = Cidr::parse(bad).expect_err(bad);
            assert!(error.contains(bad.trim()), "{bad}: {error}");
        }
        assert!(validate(&["10.0.0.0/8".into(), "x".into()]).is_err());
    }

    #[test]
    fn an_empty_list_allows_all_and_an_unknown_address_passes_no_list() {
        assert!(allows(&[], None));
        assert!(allows(&[], Some(ip("198.51.100.1"))));
        let list = vec!["127.0.0.1/32".to_string()];
        assert!(allows(&list, Some(ip("127.0.0.1"))));
        assert!(!allows(&list, Some(ip("127.0.0.2"))));
        assert!(!allows(&list, None));
    }
}
