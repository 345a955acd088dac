//! `family`: the address family of a route or nexthop object.

use super::values::words;
use super::{InvalidFilter, Predicate};
use crate::v1::{Family, Filter};

const FAMILIES: &[(&str, Family)] = &[
    ("inet", Family::Inet),
    ("inet6", Family::Inet6),
    ("4", Family::Inet),
    ("6", Family::Inet6),
    ("ipv4", Family::Inet),
    ("ipv6", Family::Inet6),
];

pub fn build(filter: &Filter, out: &mut Vec<Predicate>) -> Result<(), InvalidFilter> {
    if filter.family.is_empty() {
        return Ok(());
    }
    let wanted: Vec<i32> = words("family", &filter.family, FAMILIES)?
        .into_iter()
        .map(|f| f as i32)
        .collect();
    out.push(Box::new(move |s| wanted.contains(&s.object.family())));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::filter::testing::*;

    #[test]
    fn matches_routes_and_nexthops_of_the_family() {
        let v4 = route("10.0.0.0/8");
        let v6 = route("2001:db8::/32");
        let inet6 = |f: &mut crate::v1::Filter| f.family = strings(&["inet6"]);
        assert!(!passes(inet6, &added(&v4)));
        assert!(passes(inet6, &added(&v6)));
        let either = |f: &mut crate::v1::Filter| f.family = strings(&["4", "ipv6"]);
        assert!(passes(either, &added(&v4)) && passes(either, &added(&v6)));
        let nh = nexthop(1);
        assert!(passes(
            |f| f.family = strings(&["inet"]),
            &nexthop_added(&nh)
        ));
    }

    #[test]
    fn unknown_families_are_refused() {
        let e = invalid(|f| f.family = strings(&["inet7"]));
        assert_eq!(e.field, "family");
        assert!(e.reason.contains("inet, inet6"), "{e}");
    }
}
