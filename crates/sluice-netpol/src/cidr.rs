//! CIDRs and addresses, read the way the API server accepts them.
//!
//! The API server parses `ipBlock` CIDRs with Go's "sloppy" rules: host bits may be set
//! (`10.0.0.5/24` means `10.0.0.0/24`) and IPv4 octets may carry leading zeros, which are decimal.

use std::net::IpAddr;

use ipnet::IpNet;

/// Parses a CIDR; the result is truncated to its network address.
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let (addr, prefix) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?} is not a CIDR (expected ADDRESS/PREFIX)"))?;
    let addr = parse_ip(addr).map_err(|_| format!("{text:?} is not a CIDR: bad address"))?;
    let prefix: u8 = prefix
        .parse()
        .map_err(|_| format!("{text:?} is not a CIDR: bad prefix length"))?;
    IpNet::new(addr, prefix)
        .map(|net| net.trunc())
        .map_err(|_| format!("{text:?} is not a CIDR: prefix length too long"))
}

/// Parses an IP address; IPv4 octets may carry leading zeros (read as decimal).
pub fn parse_ip(text: &str) -> Result<IpAddr, String> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(ip);
    }
    let octets: Vec<&str> = text.split('.').collect();
    if octets.len() == 4
        && octets
            .iter()
            .all(|o| !o.is_empty() && o.len() <= 3 && o.bytes().all(|b| b.is_ascii_digit()))
    {
        let mut bytes = [0u8; 4];
        for (slot, octet) in bytes.iter_mut().zip(&octets) {
            *slot = octet
                .parse()
                .map_err(|_| format!("{text:?} is not an IP address"))?;
        }
        return Ok(IpAddr::from(bytes));
    }
    Err(format!("{text:?} is not an IP address"))
}

/// Whether `inner` lies entirely inside `outer`.
pub fn contains_net(outer: &IpNet, inner: &IpNet) -> bool {
    outer.contains(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sloppy_forms_are_accepted() {
        assert_eq!(
            parse_cidr("10.0.0.5/24").expect("ok").to_string(),
            "10.0.0.0/24"
        );
        assert_eq!(
            parse_cidr("010.001.0.0/16").expect("ok").to_string(),
            "10.1.0.0/16"
        );
        assert_eq!(parse_cidr("fd00::1/8").expect("ok").to_string(), "fd00::/8");
        assert_eq!(parse_cidr("0.0.0.0/0").expect("ok").prefix_len(), 0);
    }

    #[test]
    fn malformed_forms_are_rejected() {
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0/8",
            "x/8",
            "10.0.0.0/-1",
            "",
            "::/129",
        ] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
        assert!(parse_ip("256.0.0.1").is_err());
    }
}
