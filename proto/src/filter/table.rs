//! `table`: the routing table of a route, or the one a rule looks up
//! (number or name).

use super::values::named;
use super::{InvalidFilter, Predicate, Vocabulary};
use crate::host_names::Kind;
use crate::v1::Filter;

pub fn build(
    filter: &Filter,
    vocabulary: &Vocabulary<'_>,
    out: &mut Vec<Predicate>,
) -> Result<(), InvalidFilter> {
    if filter.table.is_empty() {
        return Ok(());
    }
    let wanted = named("table", &filter.table, Kind::Table, vocabulary)?;
    out.push(Box::new(move |s| {
        s.object.table().is_some_and(|t| wanted.contains(&t))
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::filter::testing::*;

    #[test]
    fn names_and_numbers_above_255() {
        let mut r = route("10.0.0.0/8");
        assert!(passes(|f| f.table = strings(&["main"]), &added(&r)));
        assert!(passes(|f| f.table = strings(&["254"]), &added(&r)));
        r.table = 100000;
        assert!(passes(
            |f| f.table = strings(&["local", "100000"]),
            &added(&r)
        ));
        assert!(!passes(|f| f.table = strings(&["main"]), &added(&r)));
    }

    #[test]
    fn a_rule_matches_the_table_it_looks_up() {
        let r = rule(100, 100000);
        assert!(passes(|f| f.table = strings(&["100000"]), &rule_added(&r)));
        assert!(!passes(|f| f.table = strings(&["main"]), &rule_added(&r)));
        // goto, nop, l3mdev and the refusing actions look up no table.
        let goto = crate::v1::Rule {
            action: 2,
            table: 0,
            ..r
        };
        assert!(!passes(|f| f.table = strings(&["0"]), &rule_added(&goto)));
    }

    #[test]
    fn nexthop_objects_have_no_table() {
        let nh = nexthop(1);
        assert!(!passes(
            |f| f.table = strings(&["main"]),
            &nexthop_added(&nh)
        ));
    }

    #[test]
    fn unknown_names_are_refused() {
        let e = invalid(|f| f.table = strings(&["mian"]));
        assert_eq!(e.field, "table");
        assert!(e.reason.contains("main"), "{e}");
    }
}
