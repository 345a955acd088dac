//! `prefix`, `within`, `contains`: a route's destination exactly, inside a
//! prefix, or covering an address or prefix. Each is a set of prefixes in a
//! trie, so many values cost one lookup.

use super::values::{destination, prefixes};
use super::{InvalidFilter, Predicate};
use crate::v1::Filter;

pub fn build(filter: &Filter, out: &mut Vec<Predicate>) -> Result<(), InvalidFilter> {
    if !filter.prefix.is_empty() {
        let set = prefixes("prefix", &filter.prefix, true)?;
        out.push(Box::new(move |s| {
            dst(s).is_some_and(|dst| set.contains(&dst))
        }));
    }
    if !filter.within.is_empty() {
        let set = prefixes("within", &filter.within, false)?;
        out.push(Box::new(move |s| {
            dst(s).is_some_and(|dst| set.is_covered(&dst))
        }));
    }
    if !filter.contains.is_empty() {
        let set = prefixes("contains", &filter.contains, false)?;
        // `children` lists the values inside the destination, itself included.
        out.push(Box::new(move |s| {
            dst(s).is_some_and(|dst| set.children(&dst).next().is_some())
        }));
    }
    Ok(())
}

fn dst(s: &super::Subject<'_>) -> Option<ipnet::IpNet> {
    destination(&s.object.route()?.dst)
}

#[cfg(test)]
mod tests {
    use crate::filter::testing::*;
    use crate::v1::Filter;

    fn prefix(v: &'static [&'static str]) -> impl Fn(&mut Filter) + Copy {
        move |f: &mut Filter| f.prefix = strings(v)
    }
    fn within(v: &'static [&'static str]) -> impl Fn(&mut Filter) + Copy {
        move |f: &mut Filter| f.within = strings(v)
    }
    fn contains(v: &'static [&'static str]) -> impl Fn(&mut Filter) + Copy {
        move |f: &mut Filter| f.contains = strings(v)
    }

    #[test]
    fn exact_prefixes() {
        let r = route("10.1.0.0/16");
        assert!(passes(prefix(&["10.1.0.0/16"]), &added(&r)));
        assert!(!passes(prefix(&["10.0.0.0/8"]), &added(&r)));
        assert!(passes(prefix(&["default"]), &added(&route("0.0.0.0/0"))));
        assert!(passes(prefix(&["default"]), &added(&route("::/0"))));
        assert!(passes(prefix(&["10.1.2.3"]), &added(&route("10.1.2.3/32"))));
    }

    #[test]
    fn within_is_equal_or_more_specific() {
        let f = within(&["10.0.0.0/8", "2001:db8::/32"]);
        for (dst, passes_) in [
            ("10.0.0.0/8", true),
            ("10.200.1.0/24", true),
            ("10.0.0.1/32", true),
            ("0.0.0.0/0", false),
            ("11.0.0.0/8", false),
            ("2001:db8:5::/64", true),
            ("2001:db9::/32", false),
        ] {
            assert_eq!(passes(f, &added(&route(dst))), passes_, "{dst}");
        }
    }

    #[test]
    fn contains_is_equal_or_less_specific() {
        let f = contains(&["10.1.2.3"]);
        for (dst, passes_) in [
            ("0.0.0.0/0", true),
            ("10.0.0.0/8", true),
            ("10.1.2.3/32", true),
            ("10.1.3.0/24", false),
            ("::/0", false),
        ] {
            assert_eq!(passes(f, &added(&route(dst))), passes_, "{dst}");
        }
        assert!(passes(
            contains(&["10.1.0.0/16"]),
            &added(&route("10.0.0.0/8"))
        ));
        assert!(!passes(
            contains(&["10.0.0.0/8"]),
            &added(&route("10.1.0.0/16"))
        ));
    }

    #[test]
    fn nexthop_objects_have_no_destination() {
        assert!(!passes(within(&["0.0.0.0/0"]), &nexthop_added(&nexthop(1))));
    }

    #[test]
    fn bad_prefixes_name_their_field() {
        let e = invalid(within(&["10.1.2.3/8"]));
        assert_eq!(e.field, "within");
        assert_eq!(e.reason, "host bits set (did you mean 10.0.0.0/8?)");
        assert_eq!(invalid(contains(&["default"])).field, "contains");
        assert_eq!(invalid(prefix(&["10.0.0.0/40"])).field, "prefix");
    }
}
