//! The compiled allow and deny lists, and the one list of filter kinds.
//!
//! An event passes when it matches any allow filter (or there is none) and
//! no deny filter. Within one filter every field that is set must match;
//! a field matches when any of its values does.

use super::{
    action, changed_by, destination, dev, family, gateway, metric, netns, object, origin, protocol,
    route_type, scope, table, vrf, InvalidFilter, Subject, Vocabulary,
};
use crate::host_names::Names;
use crate::v1::{Filter, SubscribeRequest};

/// One field's test, built once per subscription.
pub type Predicate = Box<dyn Fn(&Subject<'_>) -> bool + Send + Sync>;

/// Turns one kind of field of a filter into predicates (none when the
/// field is not set), or says which value is wrong.
type Build = fn(&Filter, &mut Vec<Predicate>) -> Result<(), InvalidFilter>;

/// Like [`Build`], for a field whose values are names a host's iproute2
/// files give (see [`Vocabulary`]).
type BuildNamed = fn(&Filter, &Vocabulary<'_>, &mut Vec<Predicate>) -> Result<(), InvalidFilter>;

/// Every kind of field, each in its own file ...
const KINDS: &[Build] = &[
    family::build,
    route_type::build,
    destination::build,
    gateway::build,
    dev::build,
    metric::build,
    action::build,
    origin::build,
    object::build,
    netns::build,
    vrf::build,
    changed_by::build,
];

/// ... and those that read names.
const NAMED_KINDS: &[BuildNamed] = &[table::build, protocol::build, scope::build];

/// A subscription's filters, ready to test events.
#[derive(Default)]
pub struct Filters {
    allow: Vec<Compiled>,
    deny: Vec<Compiled>,
}

/// One filter: all its predicates must hold.
struct Compiled(Vec<Predicate>);

impl Compiled {
    fn new(filter: &Filter, vocabulary: &Vocabulary<'_>) -> Result<Compiled, InvalidFilter> {
        let mut predicates = Vec::new();
        for build in KINDS {
            build(filter, &mut predicates)?;
        }
        for build in NAMED_KINDS {
            build(filter, vocabulary, &mut predicates)?;
        }
        Ok(Compiled(predicates))
    }

    fn matches(&self, subject: &Subject<'_>) -> bool {
        self.0.iter().all(|p| p(subject))
    }
}

impl Filters {
    /// Compiles both lists with the built-in names, or names the first bad
    /// value.
    pub fn compile(allow: &[Filter], deny: &[Filter]) -> Result<Filters, InvalidFilter> {
        Filters::compile_in(allow, deny, Vocabulary::Host(&Names::builtin()))
    }

    /// Compiles both lists with `vocabulary`'s names.
    pub fn compile_in(
        allow: &[Filter],
        deny: &[Filter],
        vocabulary: Vocabulary<'_>,
    ) -> Result<Filters, InvalidFilter> {
        let list = |name: &'static str, filters: &[Filter]| {
            filters
                .iter()
                .enumerate()
                .map(|(i, f)| Compiled::new(f, &vocabulary).map_err(|e| e.at(name, i)))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Filters {
            allow: list("allow", allow)?,
            deny: list("deny", deny)?,
        })
    }

    /// The request's filters, read with a host's `names`.
    pub fn of(request: &SubscribeRequest, names: &Names) -> Result<Filters, InvalidFilter> {
        Filters::compile_in(&request.allow, &request.deny, Vocabulary::Host(names))
    }

    /// No filter at all: every event passes.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// Whether `subject` passes.
    pub fn matches(&self, subject: &Subject<'_>) -> bool {
        (self.allow.is_empty() || self.allow.iter().any(|f| f.matches(subject)))
            && !self.deny.iter().any(|f| f.matches(subject))
    }
}

impl std::fmt::Debug for Filters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filters")
            .field("allow", &self.allow.len())
            .field("deny", &self.deny.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::testing::{added, route};

    fn filter(edit: impl FnOnce(&mut Filter)) -> Filter {
        let mut f = Filter::default();
        edit(&mut f);
        f
    }

    fn bgp() -> Filter {
        filter(|f| f.protocol = vec!["bgp".into()])
    }

    #[test]
    fn a_rule_matches_its_own_fields_and_never_a_route_s() {
        use crate::filter::testing::{rule, rule_added, strings};
        let mut r = rule(100, 100);
        r.protocol = 186;
        let passes = |edit: fn(&mut Filter)| {
            Filters::compile(&[filter(edit)], &[])
                .expect("valid filter")
                .matches(&rule_added(&r))
        };
        assert!(passes(|f| f.family = strings(&["inet"])));
        assert!(passes(|f| f.protocol = strings(&["bgp"])));
        assert!(passes(|f| f.action = strings(&["add"])));
        assert!(passes(|f| f.origin = strings(&["notification"])));
        assert!(passes(|f| f.netns = strings(&[""])));
        assert!(!passes(|f| f.family = strings(&["inet6"])));
        for route_only in [
            (|f: &mut Filter| f.scope = strings(&["global"])) as fn(&mut Filter),
            |f| f.r#type = strings(&["unicast"]),
            |f| f.within = strings(&["0.0.0.0/0"]),
            |f| f.contains = strings(&["10.0.0.1"]),
            |f| f.prefix = strings(&["default"]),
            |f| f.gateway_within = strings(&["0.0.0.0/0"]),
            |f| f.dev = strings(&["lo"]),
            |f| f.metric = strings(&["0-"]),
        ] {
            assert!(!passes(route_only));
        }
    }

    #[test]
    fn no_filter_passes_everything() {
        let filters = Filters::compile(&[], &[]).unwrap();
        assert!(filters.is_empty());
        assert!(filters.matches(&added(&route("10.0.0.0/8"))));
    }

    #[test]
    fn an_empty_filter_matches_everything() {
        let filters = Filters::compile(&[Filter::default()], &[]).unwrap();
        assert!(filters.matches(&added(&route("10.0.0.0/8"))));
        let filters = Filters::compile(&[], &[Filter::default()]).unwrap();
        assert!(!filters.matches(&added(&route("10.0.0.0/8"))), "deny all");
    }

    #[test]
    fn any_allow_and_no_deny() {
        let mut r = route("10.1.0.0/16");
        r.protocol = 186;
        let within_10 = filter(|f| f.within = vec!["10.0.0.0/8".into()]);
        let within_192 = filter(|f| f.within = vec!["192.168.0.0/16".into()]);
        let f = Filters::compile(&[within_192.clone(), within_10.clone()], &[]).unwrap();
        assert!(f.matches(&added(&r)), "one allow filter of two matches");
        let f = Filters::compile(&[within_192], &[]).unwrap();
        assert!(!f.matches(&added(&r)));
        let f = Filters::compile(&[within_10], &[bgp()]).unwrap();
        assert!(!f.matches(&added(&r)), "denied although allowed");
        r.protocol = 4;
        assert!(f.matches(&added(&r)));
    }

    #[test]
    fn fields_and_values() {
        let f = filter(|f| {
            f.protocol = vec!["bgp".into(), "static".into()];
            f.within = vec!["10.0.0.0/8".into()];
        });
        let f = Filters::compile(&[f], &[]).unwrap();
        let mut r = route("10.1.0.0/16");
        for (protocol, passes) in [(186, true), (4, true), (2, false)] {
            r.protocol = protocol;
            assert_eq!(f.matches(&added(&r)), passes, "protocol {protocol}");
        }
        r.protocol = 186;
        r.dst = "11.0.0.0/8".into();
        assert!(!f.matches(&added(&r)), "fields AND together");
    }

    #[test]
    fn errors_name_the_list_position_and_field() {
        let bad = filter(|f| f.table = vec!["mian".into()]);
        let e = Filters::compile(&[bgp()], &[bgp(), bad]).unwrap_err();
        assert_eq!(e.position, Some(("deny", 1)));
        assert_eq!(e.field, "table");
        assert!(
            e.to_string()
                .starts_with(r#"deny[1].table "mian": expected"#),
            "{e}"
        );
    }
}
