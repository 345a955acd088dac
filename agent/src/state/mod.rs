//! The routing state of one network namespace and the rules that keep it
//! equal to the kernel's.

mod key;
mod record;
mod routes;
mod table;

pub use key::{base_key, route_key, rule_key, Key};
pub use record::{Numbers, Record};
pub use table::{Action, Change, Object, Previous, Recheck, StateTable};

#[cfg(test)]
#[macro_use]
mod tests;

#[cfg(test)]
mod rule_tests;
