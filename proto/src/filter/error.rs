//! A filter value that cannot be used.

use std::fmt;

/// A bad value in a filter, found when the subscription starts. Names the
/// list and position of the filter (when known), the field and the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidFilter {
    /// `("allow", 0)` for the first allow filter; `None` before the filter
    /// is placed in a list.
    pub position: Option<(&'static str, usize)>,
    /// The field, as the API names it (`within`, `protocol`, ...).
    pub field: &'static str,
    /// The value as given.
    pub value: String,
    /// What is wrong with it, and what would be right.
    pub reason: String,
}

impl InvalidFilter {
    pub fn new(field: &'static str, value: &str, reason: impl Into<String>) -> InvalidFilter {
        InvalidFilter {
            position: None,
            field,
            value: value.to_owned(),
            reason: reason.into(),
        }
    }

    /// The same error, placed at `list[index]`.
    pub fn at(self, list: &'static str, index: usize) -> InvalidFilter {
        InvalidFilter {
            position: Some((list, index)),
            ..self
        }
    }
}

impl fmt::Display for InvalidFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((list, index)) = self.position {
            write!(f, "{list}[{index}].")?;
        }
        write!(f, "{} {:?}: {}", self.field, self.value, self.reason)
    }
}

impl std::error::Error for InvalidFilter {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_list_field_and_value() {
        let e = InvalidFilter::new("within", "10.0.0.1/8", "host bits set").at("allow", 1);
        assert_eq!(
            e.to_string(),
            r#"allow[1].within "10.0.0.1/8": host bits set"#
        );
    }
}
