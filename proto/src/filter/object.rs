//! `object`: routes, nexthop objects or policy rules.

use super::values::words;
use super::{InvalidFilter, Object, Predicate};
use crate::v1::Filter;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Route,
    Nexthop,
    Rule,
}

const KINDS: &[(&str, Kind)] = &[
    ("route", Kind::Route),
    ("nexthop", Kind::Nexthop),
    ("rule", Kind::Rule),
];

pub fn build(filter: &Filter, out: &mut Vec<Predicate>) -> Result<(), InvalidFilter> {
    if filter.object.is_empty() {
        return Ok(());
    }
    let wanted = words("object", &filter.object, KINDS)?;
    out.push(Box::new(move |s| {
        let kind = match s.object {
            Object::Route(_) => Kind::Route,
            Object::Nexthop(_) => Kind::Nexthop,
            Object::Rule(_) => Kind::Rule,
        };
        wanted.contains(&kind)
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::filter::testing::*;

    #[test]
    fn routes_or_nexthop_objects() {
        let r = route("10.0.0.0/8");
        let nh = nexthop(1);
        let only = |f: &mut crate::v1::Filter| f.object = strings(&["nexthop"]);
        assert!(!passes(only, &added(&r)));
        assert!(passes(only, &nexthop_added(&nh)));
        assert_eq!(invalid(|f| f.object = strings(&["rules"])).field, "object");
    }

    #[test]
    fn rules() {
        let rule = rule(100, 100);
        let only = |f: &mut crate::v1::Filter| f.object = strings(&["rule"]);
        assert!(passes(only, &rule_added(&rule)));
        assert!(!passes(only, &added(&route("10.0.0.0/8"))));
        assert!(!passes(
            |f| f.object = strings(&["route", "nexthop"]),
            &rule_added(&rule)
        ));
    }
}
