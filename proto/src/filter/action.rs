//! `action`: whether the event adds or deletes its object.

use super::values::words;
use super::{InvalidFilter, Predicate};
use crate::v1::{Action, Filter};

const ACTIONS: &[(&str, Action)] = &[("add", Action::Add), ("delete", Action::Delete)];

pub fn build(filter: &Filter, out: &mut Vec<Predicate>) -> Result<(), InvalidFilter> {
    if filter.action.is_empty() {
        return Ok(());
    }
    let wanted = words("action", &filter.action, ACTIONS)?;
    out.push(Box::new(move |s| wanted.contains(&s.action)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::filter::testing::*;
    use crate::v1::Action;

    #[test]
    fn adds_or_deletes() {
        let r = route("10.0.0.0/8");
        let mut s = added(&r);
        assert!(passes(|f| f.action = strings(&["add"]), &s));
        s.action = Action::Delete;
        assert!(!passes(|f| f.action = strings(&["add"]), &s));
        assert!(passes(|f| f.action = strings(&["add", "delete"]), &s));
        assert_eq!(invalid(|f| f.action = strings(&["del"])).field, "action");
    }
}
