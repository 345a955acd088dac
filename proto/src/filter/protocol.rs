//! `protocol`: who installed a route or nexthop object (number or iproute2
//! name).

use super::values::named;
use super::{InvalidFilter, Predicate, Vocabulary};
use crate::host_names::Kind;
use crate::v1::Filter;

pub fn build(
    filter: &Filter,
    vocabulary: &Vocabulary<'_>,
    out: &mut Vec<Predicate>,
) -> Result<(), InvalidFilter> {
    if filter.protocol.is_empty() {
        return Ok(());
    }
    let wanted = named("protocol", &filter.protocol, Kind::Protocol, vocabulary)?;
    out.push(Box::new(move |s| wanted.contains(&s.object.protocol())));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::filter::testing::*;

    #[test]
    fn iproute2_names_and_numbers() {
        let mut r = route("10.0.0.0/8");
        r.protocol = 186;
        assert!(passes(|f| f.protocol = strings(&["bgp"]), &added(&r)));
        assert!(passes(
            |f| f.protocol = strings(&["ospf", "186"]),
            &added(&r)
        ));
        assert!(!passes(|f| f.protocol = strings(&["static"]), &added(&r)));
        let mut nh = nexthop(1);
        nh.protocol = 188;
        assert!(passes(
            |f| f.protocol = strings(&["ospf"]),
            &nexthop_added(&nh)
        ));
    }

    #[test]
    fn unknown_names_and_large_numbers_are_refused() {
        assert_eq!(
            invalid(|f| f.protocol = strings(&["bgpp"])).field,
            "protocol"
        );
        let e = invalid(|f| f.protocol = strings(&["300"]));
        assert_eq!(e.reason, "out of range (0-255)");
    }
}
