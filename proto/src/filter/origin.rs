//! `origin`: why the agent sent the event (notification, dump, reconcile).

use super::values::words;
use super::{InvalidFilter, Predicate};
use crate::v1::{Filter, Origin};

const ORIGINS: &[(&str, Origin)] = &[
    ("notification", Origin::Notification),
    ("dump", Origin::Dump),
    ("reconcile", Origin::Reconcile),
];

pub fn build(filter: &Filter, out: &mut Vec<Predicate>) -> Result<(), InvalidFilter> {
    if filter.origin.is_empty() {
        return Ok(());
    }
    let wanted = words("origin", &filter.origin, ORIGINS)?;
    out.push(Box::new(move |s| wanted.contains(&s.origin)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::filter::testing::*;
    use crate::v1::Origin;

    #[test]
    fn matches_the_origin() {
        let r = route("10.0.0.0/8");
        let mut s = added(&r);
        s.origin = Origin::Reconcile;
        assert!(passes(|f| f.origin = strings(&["reconcile"]), &s));
        assert!(!passes(
            |f| f.origin = strings(&["dump", "notification"]),
            &s
        ));
        assert_eq!(invalid(|f| f.origin = strings(&["kernel"])).field, "origin");
    }
}
