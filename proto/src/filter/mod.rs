//! Subscription filters: the `allow` and `deny` lists of a
//! `SubscribeRequest`, compiled once into predicates over events.
//!
//! One file per kind of field, each turning its part of a [`Filter`] into
//! predicates and rejecting bad values; [`Filters`] holds the registered
//! list and the allow/deny semantics.
//!
//! [`Filter`]: crate::v1::Filter

mod action;
mod changed_by;
mod destination;
mod dev;
mod error;
mod family;
mod filters;
mod gateway;
mod metric;
mod netns;
mod object;
mod origin;
mod protocol;
mod route_type;
mod scope;
mod subject;
mod table;
mod values;
mod vocabulary;
mod vrf;

#[cfg(test)]
mod testing;

pub use error::InvalidFilter;
pub use filters::{Filters, Predicate};
pub use subject::{Object, Subject};
pub use values::prefix;
pub use vocabulary::Vocabulary;
