//! Events to test filters on.

use super::{Object, Subject};
use crate::v1::{Action, Family, Nexthop, Origin, Route, Rule};

/// An IPv4 or IPv6 unicast route to `dst` in the main table.
pub fn route(dst: &str) -> Route {
    let family = if dst.contains(':') {
        Family::Inet6
    } else {
        Family::Inet
    };
    Route {
        family: family as i32,
        table: 254,
        dst: dst.to_owned(),
        r#type: 1,
        protocol: 3,
        ..Default::default()
    }
}

/// An IPv4 nexthop object.
pub fn nexthop(id: u32) -> Nexthop {
    Nexthop {
        id,
        family: Family::Inet as i32,
        ..Default::default()
    }
}

/// `route` added by a notification, in the agent's own namespace.
pub fn added(route: &Route) -> Subject<'_> {
    Subject {
        action: Action::Add,
        origin: Origin::Notification,
        netns: "",
        changed_by: None,
        object: Object::Route(route),
    }
}

/// An IPv4 rule at `priority` that looks up `table`.
pub fn rule(priority: u32, table: u32) -> Rule {
    Rule {
        family: Family::Inet as i32,
        priority,
        action: 1,
        table,
        ..Default::default()
    }
}

/// `rule` added by a notification.
pub fn rule_added(rule: &Rule) -> Subject<'_> {
    Subject {
        action: Action::Add,
        origin: Origin::Notification,
        netns: "",
        changed_by: None,
        object: Object::Rule(rule),
    }
}

/// `nexthop` added by a notification.
pub fn nexthop_added(nexthop: &Nexthop) -> Subject<'_> {
    Subject {
        action: Action::Add,
        origin: Origin::Notification,
        netns: "",
        changed_by: None,
        object: Object::Nexthop(nexthop),
    }
}

/// Whether `subject` passes a single allow filter built by `edit`.
pub fn passes(edit: impl FnOnce(&mut crate::v1::Filter), subject: &Subject<'_>) -> bool {
    let mut filter = crate::v1::Filter::default();
    edit(&mut filter);
    super::Filters::compile(&[filter], &[])
        .expect("valid filter")
        .matches(subject)
}

/// The error a single allow filter built by `edit` gives.
pub fn invalid(edit: impl FnOnce(&mut crate::v1::Filter)) -> super::InvalidFilter {
    let mut filter = crate::v1::Filter::default();
    edit(&mut filter);
    match super::Filters::compile(&[filter], &[]) {
        Ok(_) => panic!("filter accepted"),
        Err(e) => e,
    }
}

/// `values` as owned strings.
pub fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}
