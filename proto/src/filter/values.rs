//! Reading filter values that several kinds share: iproute2 names or
//! numbers, fixed words, and prefixes.

use std::net::IpAddr;

use ipnet::IpNet;
use prefix_trie::joint::JointPrefixSet;

use super::{InvalidFilter, Vocabulary};
use crate::host_names::Kind;
use crate::names;

/// Each value as a number of `kind`: a name in `vocabulary` or a number.
/// Words left to the agent (see [`Vocabulary::Deferred`]) are left out.
pub fn named(
    field: &'static str,
    values: &[String],
    kind: Kind,
    vocabulary: &Vocabulary<'_>,
) -> Result<Vec<u32>, InvalidFilter> {
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        match vocabulary.number(kind, v) {
            Ok(Some(n)) => out.push(n),
            Ok(None) => {}
            Err(reason) => return Err(InvalidFilter::new(field, v, reason)),
        }
    }
    Ok(out)
}

/// Each value as a number: an iproute2 name from `table` or a number up to
/// `max`.
pub fn numbers(
    field: &'static str,
    values: &[String],
    table: &[(u32, &str)],
    max: u32,
) -> Result<Vec<u32>, InvalidFilter> {
    values
        .iter()
        .map(|v| match names::number(table, v) {
            Some(n) if n <= max => Ok(n),
            Some(_) => Err(InvalidFilter::new(
                field,
                v,
                format!("out of range (0-{max})"),
            )),
            None => {
                let known: Vec<&str> = table.iter().map(|(_, name)| *name).collect();
                Err(InvalidFilter::new(
                    field,
                    v,
                    format!("expected a number (0-{max}) or one of {}", known.join(", ")),
                ))
            }
        })
        .collect()
}

/// IFNAMSIZ less the terminating zero.
const MAX_INTERFACE_NAME: usize = 15;

/// A value that must be a possible interface name.
pub fn interface_name(field: &'static str, name: &str) -> Result<(), InvalidFilter> {
    if name.is_empty() || name.len() > MAX_INTERFACE_NAME {
        return Err(InvalidFilter::new(
            field,
            name,
            format!("an interface name has 1 to {MAX_INTERFACE_NAME} bytes"),
        ));
    }
    if name.contains(['/', ' ', '\t', '\n']) {
        return Err(InvalidFilter::new(
            field,
            name,
            "an interface name has no '/' or white space",
        ));
    }
    Ok(())
}

/// Each value as one of `words` (several spellings may mean one thing).
pub fn words<T: Copy>(
    field: &'static str,
    values: &[String],
    words: &[(&str, T)],
) -> Result<Vec<T>, InvalidFilter> {
    values
        .iter()
        .map(|v| {
            words
                .iter()
                .find(|(w, _)| w.eq_ignore_ascii_case(v))
                .map(|(_, t)| *t)
                .ok_or_else(|| {
                    let mut known: Vec<&str> = words.iter().map(|(w, _)| *w).collect();
                    known.dedup();
                    InvalidFilter::new(field, v, format!("expected one of {}", known.join(", ")))
                })
        })
        .collect()
}

/// The values as a set of prefixes: `a.b.c.d/len` or `x::/len` without
/// host bits, or an address (a host prefix). With `default`, the word
/// "default" stands for 0.0.0.0/0 and ::/0.
pub fn prefixes(
    field: &'static str,
    values: &[String],
    default: bool,
) -> Result<JointPrefixSet<IpNet>, InvalidFilter> {
    let mut set = JointPrefixSet::new();
    for v in values {
        if default && v == "default" {
            set.insert(IpNet::V4(Default::default()));
            set.insert(IpNet::V6(Default::default()));
            continue;
        }
        set.insert(prefix(field, v)?);
    }
    Ok(set)
}

/// One prefix value (see [`prefixes`]).
pub fn prefix(field: &'static str, v: &str) -> Result<IpNet, InvalidFilter> {
    if let Ok(addr) = v.parse::<IpAddr>() {
        return Ok(IpNet::from(addr));
    }
    let net: IpNet = v.parse().map_err(|_| {
        InvalidFilter::new(
            field,
            v,
            "expected an address or a prefix such as 10.0.0.0/8 or 2001:db8::/32",
        )
    })?;
    if net.trunc() != net {
        return Err(InvalidFilter::new(
            field,
            v,
            format!("host bits set (did you mean {}?)", net.trunc()),
        ));
    }
    Ok(net)
}

/// A route's destination (always `address/length` on the wire).
pub fn destination(dst: &str) -> Option<IpNet> {
    dst.parse().ok()
}

/// A gateway address as a host prefix.
pub fn gateway(gateway: &str) -> Option<IpNet> {
    gateway.parse::<IpAddr>().ok().map(IpNet::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_and_numbers_within_range() {
        let got = numbers(
            "protocol",
            &strings(&["bgp", "4", "255"]),
            names::PROTOCOLS,
            255,
        );
        assert_eq!(got, Ok(vec![186, 4, 255]));
        let e = numbers("protocol", &strings(&["256"]), names::PROTOCOLS, 255).unwrap_err();
        assert_eq!(e.reason, "out of range (0-255)");
        let e = numbers("protocol", &strings(&["bgpp"]), names::PROTOCOLS, 255).unwrap_err();
        assert!(e.reason.contains("bgp, isis, ospf"), "{e}");
    }

    #[test]
    fn host_names_and_deferred_words() {
        let names = crate::Names::builtin();
        let host = Vocabulary::Host(&names);
        let got = named(
            "table",
            &strings(&["main", "1000", "0x10"]),
            Kind::Table,
            &host,
        );
        assert_eq!(got, Ok(vec![254, 1000, 16]));
        let e = named("table", &strings(&["blue"]), Kind::Table, &host).unwrap_err();
        assert!(e.reason.contains("default, main, local"), "{e}");
        assert!(e.reason.contains("rt_tables"), "{e}");
        let deferred = Vocabulary::Deferred;
        let got = named("table", &strings(&["blue", "main"]), Kind::Table, &deferred);
        assert_eq!(got, Ok(vec![254]), "blue is the agent's to judge");
        let e = named("protocol", &strings(&["300"]), Kind::Protocol, &deferred).unwrap_err();
        assert_eq!(e.reason, "out of range (0-255)");
        assert!(named("protocol", &strings(&["a b"]), Kind::Protocol, &deferred).is_err());
    }

    #[test]
    fn prefixes_refuse_host_bits_and_take_addresses() {
        assert_eq!(
            prefix("within", "10.1.2.3").unwrap(),
            "10.1.2.3/32".parse::<IpNet>().unwrap()
        );
        let e = prefix("within", "10.1.2.3/8").unwrap_err();
        assert_eq!(e.reason, "host bits set (did you mean 10.0.0.0/8?)");
        assert!(prefix("within", "10.0.0.0/33").is_err());
        assert!(prefix("within", "nonsense").is_err());
        assert!(prefix("within", "default").is_err());
        let set = prefixes("prefix", &strings(&["default"]), true).unwrap();
        assert!(set.contains(&"0.0.0.0/0".parse().unwrap()));
        assert!(set.contains(&"::/0".parse().unwrap()));
    }
}
