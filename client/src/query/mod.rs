//! `routewatch query`: audit questions answered from the store `collect`
//! writes. Every query is written once, with `?` placeholders, in SQL that
//! SQLite and PostgreSQL read alike.
//!
//! - [`args`]: the command line; [`context`]: opening the store and
//!   handing the question what it works with.
//! - [`routes`], [`history`], [`diff`], [`gaps`], [`hosts`], [`verify`]:
//!   one file per question.
//! - [`targets`]: which targets `--host` names; [`version`]: a stored
//!   version and a host's table at a moment; [`row`]: reading rows;
//!   [`narrow`]: `query routes`' filters.

pub mod args;
pub mod context;
pub mod diff;
pub mod gaps;
pub mod history;
pub mod hosts;
pub mod narrow;
pub mod routes;
pub mod row;
pub mod targets;
pub mod verify;
pub mod version;

#[cfg(test)]
mod tests;

pub use args::{Query, Question};
pub use context::{answer, run, Context, Lines};
