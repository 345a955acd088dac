//! What the values of the fields that name things (table, protocol, scope)
//! are read against.

use crate::host_names::{Kind, Names};

/// The names a filter is compiled with.
#[derive(Debug, Clone, Copy)]
pub enum Vocabulary<'a> {
    /// A host's names (the agent's): a word that names nothing is an
    /// invalid value, and the error lists the names there are.
    Host(&'a Names),
    /// A client checking filters before it connects does not know the
    /// agent's names: a word that is no built-in name is let through for
    /// the agent to judge. Filters compiled so are for checking only: such
    /// a word matches nothing.
    Deferred,
}

impl Vocabulary<'_> {
    /// The number `word` means, `Ok(None)` for a word left to the agent,
    /// or the reason it means nothing.
    pub fn number(&self, kind: Kind, word: &str) -> Result<Option<u32>, String> {
        let max = kind.max();
        let builtin;
        let names = match self {
            Vocabulary::Host(names) => *names,
            Vocabulary::Deferred => {
                builtin = Names::builtin();
                &builtin
            }
        };
        let table = names.of(kind);
        match table.number(word) {
            Some(n) if n <= max => Ok(Some(n)),
            Some(_) => Err(format!("out of range (0-{max})")),
            None if !word.is_empty() && word.chars().all(|c| c.is_ascii_digit()) => {
                Err(format!("out of range (0-{max})"))
            }
            None if matches!(self, Vocabulary::Deferred)
                && !word.is_empty()
                && !word.contains(char::is_whitespace) =>
            {
                Ok(None)
            }
            None => Err(format!(
                "expected a number (0-{max}) or one of {} (the names of {}; add a name there, or give the number)",
                table.names().join(", "),
                kind.file(),
            )),
        }
    }
}
