//! `type`: a route's type (unicast, blackhole, local, ...).

use super::values::numbers;
use super::{InvalidFilter, Predicate};
use crate::names::ROUTE_TYPES;
use crate::v1::Filter;

pub fn build(filter: &Filter, out: &mut Vec<Predicate>) -> Result<(), InvalidFilter> {
    if filter.r#type.is_empty() {
        return Ok(());
    }
    let wanted = numbers("type", &filter.r#type, ROUTE_TYPES, 255)?;
    out.push(Box::new(move |s| {
        s.object.route().is_some_and(|r| wanted.contains(&r.r#type))
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::filter::testing::*;

    #[test]
    fn matches_the_route_type() {
        let mut r = route("10.0.0.0/8");
        r.r#type = 6;
        assert!(passes(
            |f| f.r#type = strings(&["blackhole", "unreachable"]),
            &added(&r)
        ));
        assert!(!passes(|f| f.r#type = strings(&["unicast"]), &added(&r)));
        let nh = nexthop(1);
        assert!(!passes(
            |f| f.r#type = strings(&["unicast"]),
            &nexthop_added(&nh)
        ));
    }

    #[test]
    fn unknown_types_are_refused() {
        let e = invalid(|f| f.r#type = strings(&["blackhol"]));
        assert_eq!(e.field, "type");
        assert!(e.reason.contains("blackhole"), "{e}");
    }
}
