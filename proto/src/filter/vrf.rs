//! `vrf`: the VRF whose table holds the route (the name of a `vrf` link).

use super::values::interface_name;
use super::{InvalidFilter, Predicate};
use crate::v1::Filter;

pub fn build(filter: &Filter, out: &mut Vec<Predicate>) -> Result<(), InvalidFilter> {
    if filter.vrf.is_empty() {
        return Ok(());
    }
    for name in &filter.vrf {
        interface_name("vrf", name)?;
    }
    let wanted = filter.vrf.clone();
    out.push(Box::new(move |s| {
        s.object.route().is_some_and(|r| wanted.contains(&r.vrf))
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::filter::testing::*;

    #[test]
    fn routes_of_the_vrf_s_table() {
        let mut r = route("10.0.0.0/8");
        assert!(!passes(|f| f.vrf = strings(&["blue"]), &added(&r)));
        r.vrf = "blue".into();
        assert!(passes(|f| f.vrf = strings(&["red", "blue"]), &added(&r)));
        assert!(!passes(|f| f.vrf = strings(&["red"]), &added(&r)));
    }

    #[test]
    fn nexthop_objects_are_in_no_vrf() {
        assert!(!passes(
            |f| f.vrf = strings(&["blue"]),
            &nexthop_added(&nexthop(1))
        ));
    }

    #[test]
    fn impossible_names_are_refused() {
        assert_eq!(invalid(|f| f.vrf = strings(&[""])).field, "vrf");
        assert_eq!(invalid(|f| f.vrf = strings(&["a b"])).field, "vrf");
    }
}
