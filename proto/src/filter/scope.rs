//! `scope`: the scope of a route or nexthop object.

use super::values::named;
use super::{InvalidFilter, Predicate, Vocabulary};
use crate::host_names::Kind;
use crate::v1::Filter;

pub fn build(
    filter: &Filter,
    vocabulary: &Vocabulary<'_>,
    out: &mut Vec<Predicate>,
) -> Result<(), InvalidFilter> {
    if filter.scope.is_empty() {
        return Ok(());
    }
    let wanted = named("scope", &filter.scope, Kind::Scope, vocabulary)?;
    out.push(Box::new(move |s| {
        s.object
            .scope()
            .is_some_and(|scope| wanted.contains(&scope))
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::filter::testing::*;

    #[test]
    fn matches_the_scope() {
        let mut r = route("10.0.0.0/8");
        r.scope = 253;
        assert!(passes(|f| f.scope = strings(&["link"]), &added(&r)));
        assert!(!passes(
            |f| f.scope = strings(&["global", "host"]),
            &added(&r)
        ));
        assert_eq!(invalid(|f| f.scope = strings(&["planet"])).field, "scope");
    }
}
