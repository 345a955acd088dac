//! iproute2's built-in names for the kernel's numbers.
//!
//! The agent sends numbers (so values newer than this code survive) and,
//! beside them, its host's names ([`crate::host_names`], which starts from
//! these tables). The printers use the agent's names when an event carries
//! them and these otherwise. The tables follow iproute2's `rt_protos`,
//! `rt_scopes`, `rt_tables` and `rt_realms` files and `ip route`'s built-in
//! names; a number without a name prints as itself.

use std::borrow::Cow;

/// `ip route`'s names of route types (RTN_*).
pub const ROUTE_TYPES: &[(u32, &str)] = &[
    (0, "none"),
    (1, "unicast"),
    (2, "local"),
    (3, "broadcast"),
    (4, "anycast"),
    (5, "multicast"),
    (6, "blackhole"),
    (7, "unreachable"),
    (8, "prohibit"),
    (9, "throw"),
    (10, "nat"),
    (11, "xresolve"),
];

/// iproute2's `rt_protos`.
pub const PROTOCOLS: &[(u32, &str)] = &[
    (0, "unspec"),
    (1, "redirect"),
    (2, "kernel"),
    (3, "boot"),
    (4, "static"),
    (8, "gated"),
    (9, "ra"),
    (10, "mrt"),
    (11, "zebra"),
    (12, "bird"),
    (13, "dnrouted"),
    (14, "xorp"),
    (15, "ntk"),
    (16, "dhcp"),
    (18, "keepalived"),
    (42, "babel"),
    (99, "openr"),
    (186, "bgp"),
    (187, "isis"),
    (188, "ospf"),
    (189, "rip"),
    (192, "eigrp"),
];

/// iproute2's `rt_scopes`.
pub const SCOPES: &[(u32, &str)] = &[
    (0, "global"),
    (200, "site"),
    (253, "link"),
    (254, "host"),
    (255, "nowhere"),
];

/// iproute2's `rt_tables`.
pub const TABLES: &[(u32, &str)] = &[
    (0, "unspec"),
    (253, "default"),
    (254, "main"),
    (255, "local"),
];

/// iproute2's `rt_realms`.
pub const REALMS: &[(u32, &str)] = &[(0, "cosmos")];

/// RTNH_F_* flags as `ip` names them, lowest bit first.
pub const NEXTHOP_FLAGS: &[(u32, &str)] = &[
    (1, "dead"),
    (2, "pervasive"),
    (4, "onlink"),
    (8, "offload"),
    (16, "linkdown"),
    (32, "unresolved"),
    (64, "trap"),
];

/// RTAX_* route metrics as `ip` names them.
pub const METRICS: &[(u32, &str)] = &[
    (1, "lock"),
    (2, "mtu"),
    (3, "window"),
    (4, "rtt"),
    (5, "rttvar"),
    (6, "ssthresh"),
    (7, "cwnd"),
    (8, "advmss"),
    (9, "reordering"),
    (10, "hoplimit"),
    (11, "initcwnd"),
    (12, "features"),
    (13, "rto_min"),
    (14, "initrwnd"),
    (15, "quickack"),
    (16, "congctl"),
    (17, "fastopen_no_cookie"),
];

/// IPv6 router preferences (RTA_PREF).
pub const PREFERENCES: &[(u32, &str)] = &[(0, "medium"), (1, "high"), (3, "low")];

/// The name of `value` in `table`, or the number itself.
pub fn name(table: &'static [(u32, &'static str)], value: u32) -> Cow<'static, str> {
    match table.iter().find(|(n, _)| *n == value) {
        Some((_, name)) => Cow::Borrowed(name),
        None => Cow::Owned(value.to_string()),
    }
}

/// The name an event carries (`given`, the agent's), else the built-in
/// name of `value` in `table`.
pub fn given_or<'a>(
    given: &'a str,
    table: &'static [(u32, &'static str)],
    value: u32,
) -> Cow<'a, str> {
    if given.is_empty() {
        name(table, value)
    } else {
        Cow::Borrowed(given)
    }
}

/// The number named `word` in `table`; a plain number is accepted too.
pub fn number(table: &[(u32, &str)], word: &str) -> Option<u32> {
    table
        .iter()
        .find(|(_, name)| *name == word)
        .map(|(n, _)| *n)
        .or_else(|| word.parse().ok())
}

/// The names of the bits set in `flags`, as `ip` lists them.
pub fn flag_names(flags: u32) -> Vec<Cow<'static, str>> {
    let mut names = Vec::new();
    let mut rest = flags;
    for (bit, name) in NEXTHOP_FLAGS {
        if flags & bit != 0 {
            names.push(Cow::Borrowed(*name));
            rest &= !bit;
        }
    }
    if rest != 0 {
        names.push(Cow::Owned(format!("{rest:#x}")));
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_numbers_have_iproute2_names() {
        assert_eq!(name(PROTOCOLS, 186), "bgp");
        assert_eq!(name(TABLES, 254), "main");
        assert_eq!(name(SCOPES, 253), "link");
        assert_eq!(name(ROUTE_TYPES, 6), "blackhole");
    }

    #[test]
    fn the_agent_s_name_comes_first() {
        assert_eq!(given_or("blue", TABLES, 1234), "blue");
        assert_eq!(given_or("", TABLES, 254), "main");
    }

    #[test]
    fn unknown_numbers_print_as_themselves() {
        assert_eq!(name(PROTOCOLS, 77), "77");
        assert_eq!(name(TABLES, 1000), "1000");
    }

    #[test]
    fn words_and_numbers_parse() {
        assert_eq!(number(PROTOCOLS, "bgp"), Some(186));
        assert_eq!(number(TABLES, "1000"), Some(1000));
        assert_eq!(number(TABLES, "nosuch"), None);
    }

    #[test]
    fn flags_list_lowest_bit_first() {
        assert_eq!(flag_names(4 | 16), vec!["onlink", "linkdown"]);
        assert_eq!(flag_names(0x100), vec!["0x100"]);
    }
}
