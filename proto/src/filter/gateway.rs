//! `gateway_within`: a gateway of the route (any path) or of the nexthop
//! object lies within a prefix.

use super::values::{gateway, prefixes};
use super::{InvalidFilter, Predicate};
use crate::v1::Filter;

pub fn build(filter: &Filter, out: &mut Vec<Predicate>) -> Result<(), InvalidFilter> {
    if filter.gateway_within.is_empty() {
        return Ok(());
    }
    let set = prefixes("gateway_within", &filter.gateway_within, false)?;
    out.push(Box::new(move |s| {
        s.object
            .gateways()
            .filter_map(gateway)
            .any(|g| set.is_covered(&g))
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::filter::testing::*;
    use crate::v1::NextHop;

    #[test]
    fn any_path_s_gateway() {
        let f = |f: &mut crate::v1::Filter| f.gateway_within = strings(&["10.1.0.0/24"]);
        let mut r = route("10.9.0.0/16");
        assert!(!passes(f, &added(&r)), "no gateway");
        r.gateway = "10.1.0.10".into();
        assert!(passes(f, &added(&r)));
        r.gateway.clear();
        r.nexthops = vec![
            NextHop {
                gateway: "10.2.0.10".into(),
                ..Default::default()
            },
            NextHop {
                gateway: "10.1.0.11".into(),
                ..Default::default()
            },
        ];
        assert!(passes(f, &added(&r)));
        let mut nh = nexthop(1);
        nh.gateway = "10.1.0.12".into();
        assert!(passes(f, &nexthop_added(&nh)));
        let exact = |f: &mut crate::v1::Filter| f.gateway_within = strings(&["10.1.0.12"]);
        assert!(passes(exact, &nexthop_added(&nh)));
        nh.gateway = "10.1.0.13".into();
        assert!(!passes(exact, &nexthop_added(&nh)));
    }

    #[test]
    fn bad_prefixes_are_refused() {
        let e = invalid(|f| f.gateway_within = strings(&["10.1.0.1/24"]));
        assert_eq!(e.field, "gateway_within");
    }
}
