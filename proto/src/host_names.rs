//! iproute2's names as one host has them: the built-in names of
//! [`crate::names`] with the host's `rt_tables`, `rt_protos`, `rt_scopes`
//! and `rt_realms` read over them (see [`crate::rt_names`]).
//!
//! Loaded once, when the agent (or the CLI's in-process pipeline) starts;
//! `ip` too reads the files once per run. The agent sends these names
//! beside the numbers and compiles filters with them, so that a consumer
//! needs no name tables of its own.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::names::{self, PROTOCOLS, REALMS, ROUTE_TYPES, SCOPES, TABLES};
use crate::rt_names::{self, Sources};

/// The kinds of numbers the host's files name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Table,
    Protocol,
    Scope,
    Realm,
}

impl Kind {
    /// The iproute2 file that names this kind.
    pub fn file(self) -> &'static str {
        match self {
            Kind::Table => "rt_tables",
            Kind::Protocol => "rt_protos",
            Kind::Scope => "rt_scopes",
            Kind::Realm => "rt_realms",
        }
    }

    /// The largest number `ip` names (tables are 32 bits, the rest 8).
    pub fn max(self) -> u32 {
        match self {
            Kind::Table => u32::MAX,
            _ => 255,
        }
    }

    fn builtin(self) -> &'static [(u32, &'static str)] {
        match self {
            Kind::Table => TABLES,
            Kind::Protocol => PROTOCOLS,
            Kind::Scope => SCOPES,
            Kind::Realm => REALMS,
        }
    }

    /// `ip` keeps tables in a hash of chains (a renamed number keeps its
    /// old name findable) and the rest in a 256-slot array (a later line
    /// replaces the slot), which decides what a name means when a file
    /// names two numbers alike or one number twice.
    fn chained(self) -> bool {
        self == Kind::Table
    }

    /// Only these have `.d` directories in iproute2.
    fn dot_d(self) -> bool {
        matches!(self, Kind::Table | Kind::Protocol)
    }
}

/// A host's names for tables, protocols, scopes and realms, and the fixed
/// names of route types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    tables: NameTable,
    protocols: NameTable,
    scopes: NameTable,
    realms: NameTable,
}

/// The names of one kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameTable {
    by_number: HashMap<u32, Box<str>>,
    /// The names of 0-255 again, by index: the agent looks up four names
    /// per change it encodes, nearly all of them of small numbers.
    small: Box<[Option<Box<str>>]>,
    by_name: HashMap<Box<str>, u32>,
}

/// A `--iproute2-dir` that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the iproute2 directory {}: {source} (give a directory holding rt_tables, rt_protos, ...; without the flag /etc/iproute2 and /usr/share/iproute2 are read)", .dir.display())]
pub struct NamesError {
    pub dir: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl Default for Names {
    fn default() -> Self {
        Names::builtin()
    }
}

impl Names {
    /// The built-in names alone.
    pub fn builtin() -> Names {
        Names::from_sources(None).0
    }

    /// The host's names: from `dir` when given (which must be readable),
    /// else from `/etc/iproute2` and `/usr/share/iproute2`. Also returns
    /// what `ip` would have warned about (corrupt lines, unreadable files).
    pub fn load(dir: Option<&Path>) -> Result<(Names, Vec<String>), NamesError> {
        let sources = match dir {
            Some(dir) => {
                std::fs::read_dir(dir).map_err(|source| NamesError {
                    dir: dir.to_path_buf(),
                    source,
                })?;
                Sources::only(dir)
            }
            None => Sources::standard(),
        };
        Ok(Names::from_sources(Some(&sources)))
    }

    /// The built-in names with the files of `sources` read over them.
    pub fn from_sources(sources: Option<&Sources>) -> (Names, Vec<String>) {
        let mut warnings = Vec::new();
        let mut kind = |kind: Kind| {
            let mut entries: Vec<rt_names::Entry> = kind
                .builtin()
                .iter()
                .map(|(number, name)| rt_names::Entry {
                    number: *number,
                    name: (*name).to_owned(),
                })
                .collect();
            if let Some(sources) = sources {
                let read = rt_names::read(sources, kind.file(), kind.max(), kind.dot_d());
                entries.extend(read.entries);
                warnings.extend(read.warnings);
            }
            NameTable::new(kind, entries)
        };
        let names = Names {
            tables: kind(Kind::Table),
            protocols: kind(Kind::Protocol),
            scopes: kind(Kind::Scope),
            realms: kind(Kind::Realm),
        };
        (names, warnings)
    }

    /// The names of `kind`.
    pub fn of(&self, kind: Kind) -> &NameTable {
        match kind {
            Kind::Table => &self.tables,
            Kind::Protocol => &self.protocols,
            Kind::Scope => &self.scopes,
            Kind::Realm => &self.realms,
        }
    }

    pub fn table(&self, number: u32) -> Cow<'_, str> {
        self.tables.name_or_number(number)
    }

    pub fn protocol(&self, number: u32) -> Cow<'_, str> {
        self.protocols.name_or_number(number)
    }

    pub fn scope(&self, number: u32) -> Cow<'_, str> {
        self.scopes.name_or_number(number)
    }

    pub fn realm(&self, number: u32) -> Cow<'_, str> {
        self.realms.name_or_number(number)
    }

    /// Route types have no file: `ip` has them built in.
    pub fn route_type(&self, number: u32) -> Cow<'static, str> {
        names::name(ROUTE_TYPES, number)
    }
}

impl NameTable {
    /// `entries` in the order read; a later entry for a number wins.
    fn new(kind: Kind, entries: Vec<rt_names::Entry>) -> NameTable {
        let mut by_number = HashMap::new();
        for e in &entries {
            by_number.insert(e.number, Box::<str>::from(e.name.as_str()));
        }
        // The number `ip` finds for a name: for tables the first in chain
        // order (by number's low byte, the latest read first), with old
        // names of renamed numbers still found; otherwise the lowest
        // number whose current name it is.
        let mut found: Vec<(u32, &str)> = if kind.chained() {
            let mut order: Vec<(usize, &rt_names::Entry)> = entries.iter().enumerate().collect();
            order.sort_by_key(|(i, e)| (e.number & 255, std::cmp::Reverse(*i)));
            order
                .into_iter()
                .map(|(_, e)| (e.number, e.name.as_str()))
                .collect()
        } else {
            let mut current: Vec<(u32, &str)> =
                by_number.iter().map(|(n, name)| (*n, &**name)).collect();
            current.sort_unstable();
            current
        };
        let mut by_name = HashMap::new();
        for (number, name) in found.drain(..) {
            by_name.entry(Box::<str>::from(name)).or_insert(number);
        }
        let small = (0..256)
            .map(|n| by_number.get(&n).cloned())
            .collect::<Vec<_>>()
            .into_boxed_slice();
        NameTable {
            by_number,
            small,
            by_name,
        }
    }

    /// The name of `number`, if it has one.
    pub fn name(&self, number: u32) -> Option<&str> {
        match self.small.get(number as usize) {
            Some(small) => small.as_deref(),
            None => self.by_number.get(&number).map(|n| &**n),
        }
    }

    /// The name of `number`, or the number itself as `ip` prints it.
    pub fn name_or_number(&self, number: u32) -> Cow<'_, str> {
        match self.name(number) {
            Some(name) => Cow::Borrowed(name),
            None => Cow::Owned(number.to_string()),
        }
    }

    /// The number named `word`, or `word` read as a number (decimal, or
    /// hex with `0x`, as `ip` takes them).
    pub fn number(&self, word: &str) -> Option<u32> {
        self.by_name
            .get(word)
            .copied()
            .or_else(|| parse_number(word))
    }

    /// Every name, by number (the one each number has now).
    pub fn names(&self) -> Vec<&str> {
        let mut named: Vec<(u32, &str)> = self
            .by_number
            .iter()
            .map(|(n, name)| (*n, &**name))
            .collect();
        named.sort_unstable();
        named.into_iter().map(|(_, name)| name).collect()
    }
}

/// A number as `ip` reads one on its command line (strtoul, base 0 less
/// octal, which nobody means).
pub fn parse_number(word: &str) -> Option<u32> {
    match word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => word.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str, files: &[(&str, &str)]) -> PathBuf {
        let path = std::env::temp_dir().join(format!("host-names-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        for (name, text) in files {
            let file = path.join(name);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        }
        std::fs::create_dir_all(&path).unwrap();
        path
    }

    #[test]
    fn builtin_names_hold_without_files() {
        let names = Names::builtin();
        assert_eq!(names.table(254), "main");
        assert_eq!(names.protocol(186), "bgp");
        assert_eq!(names.scope(253), "link");
        assert_eq!(names.realm(0), "cosmos");
        assert_eq!(names.route_type(6), "blackhole");
        assert_eq!(names.table(1234), "1234");
        assert_eq!(names.of(Kind::Table).number("main"), Some(254));
        assert_eq!(names.of(Kind::Table).number("0x10"), Some(16));
        assert_eq!(names.of(Kind::Table).number("blue"), None);
    }

    #[test]
    fn the_host_s_files_add_and_override_names() {
        let d = dir(
            "override",
            &[
                ("rt_tables", "1234 blue\n254 primary\n"),
                ("rt_protos.d/frr.conf", "186 frr-bgp\n"),
                ("rt_scopes", "0x10 sixteen\n"),
            ],
        );
        let (names, warnings) = Names::load(Some(&d)).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(names.table(1234), "blue");
        assert_eq!(names.table(254), "primary");
        let tables = names.of(Kind::Table);
        assert_eq!(tables.number("blue"), Some(1234));
        // `ip route show table main` still works after a rename: the
        // built-in entry stays in its chain.
        assert_eq!(tables.number("main"), Some(254));
        assert_eq!(names.protocol(186), "frr-bgp");
        assert_eq!(
            names.of(Kind::Protocol).number("bgp"),
            None,
            "slot replaced"
        );
        assert_eq!(names.of(Kind::Protocol).number("frr-bgp"), Some(186));
        assert_eq!(names.scope(16), "sixteen");
        assert!(tables.names().contains(&"blue"));
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_later_line_overrides_an_earlier_one() {
        let d = dir("later", &[("rt_tables", "100 first\n100 second\n")]);
        let (names, _) = Names::load(Some(&d)).unwrap();
        assert_eq!(names.table(100), "second");
        assert_eq!(names.of(Kind::Table).number("second"), Some(100));
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn an_unreadable_given_dir_is_an_error_that_says_what_to_give() {
        let e = Names::load(Some(Path::new("/nonexistent/iproute2"))).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("/nonexistent/iproute2"), "{text}");
        assert!(text.contains("rt_tables"), "{text}");
    }
}
