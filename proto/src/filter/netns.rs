//! `netns`: the network namespace the object lives in ("" for the agent's
//! own).

use super::{InvalidFilter, Predicate};
use crate::v1::Filter;

pub fn build(filter: &Filter, out: &mut Vec<Predicate>) -> Result<(), InvalidFilter> {
    if filter.netns.is_empty() {
        return Ok(());
    }
    let wanted = filter.netns.clone();
    out.push(Box::new(move |s| wanted.iter().any(|n| n == s.netns)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::filter::testing::*;

    #[test]
    fn matches_the_namespace() {
        let r = route("10.0.0.0/8");
        let mut s = added(&r);
        assert!(passes(|f| f.netns = strings(&[""]), &s));
        s.netns = "blue";
        assert!(!passes(|f| f.netns = strings(&[""]), &s));
        assert!(passes(|f| f.netns = strings(&["red", "blue"]), &s));
    }
}
