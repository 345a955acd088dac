//! Reading iproute2's name files (`rt_tables`, `rt_protos`, ...) the way
//! `ip` reads them (iproute2's lib/rt_names.c), so that both print a number
//! alike on the same host.
//!
//! What `ip` does, and so what this does:
//!
//! - A line is `NUMBER NAME`, the number decimal or `0x` hex; anything after
//!   the name is ignored. Leading blanks are skipped; a line that is then
//!   empty or starts with `#` is a comment.
//! - The name is the next run of non-space characters (`#` included).
//! - A line that does not parse ends the file: `ip` reports "Database FILE
//!   is corrupted at LINE" and keeps what it read before it.
//! - A number that does not fit a C `int`, or a negative one, is skipped;
//!   in a 256-entry file (protocols, scopes, realms), so is one above 255.
//! - A later line for a number overrides an earlier one.
//! - `/etc/iproute2/FILE` is read; only when it does not exist (ENOENT: an
//!   unreadable file is not replaced) `/usr/share/iproute2/FILE`.
//! - `FILE.d/*.conf` (for `rt_tables` and `rt_protos` only) is read after
//!   the file: first the system directory's, skipping names the `/etc`
//!   directory also has, then the `/etc` directory's, each in directory
//!   order (as readdir gives it), skipping names starting with `.`.

use std::io;
use std::path::{Path, PathBuf};

/// Where the files are: the administrator's directory and the system's
/// defaults below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    /// `/etc/iproute2`, or the directory given instead.
    pub etc: PathBuf,
    /// `/usr/share/iproute2`: read where `etc` has no such file; `None`
    /// when a directory was given explicitly.
    pub usr: Option<PathBuf>,
}

impl Sources {
    /// iproute2's own places.
    pub fn standard() -> Sources {
        Sources {
            etc: "/etc/iproute2".into(),
            usr: Some("/usr/share/iproute2".into()),
        }
    }

    /// `dir` alone (the `--iproute2-dir` flag).
    pub fn only(dir: impl Into<PathBuf>) -> Sources {
        Sources {
            etc: dir.into(),
            usr: None,
        }
    }
}

/// One `NUMBER NAME` entry, in the order read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub number: u32,
    pub name: String,
}

/// What reading one kind of file found.
#[derive(Debug, Default)]
pub struct Read {
    /// Every entry kept, in the order `ip` applies them (later wins).
    pub entries: Vec<Entry>,
    /// What `ip` would have complained about (corrupt lines, unreadable
    /// files), for the log.
    pub warnings: Vec<String>,
}

/// Reads `file` (e.g. `rt_tables`) and, with `dot_d`, `file.d/*.conf`,
/// keeping entries up to `max`.
pub fn read(sources: &Sources, file: &str, max: u32, dot_d: bool) -> Read {
    let mut out = Read::default();
    let main = sources.etc.join(file);
    match std::fs::read(&main) {
        Ok(bytes) => parse_into(&main, &bytes, max, &mut out),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(usr) = &sources.usr {
                read_file(&usr.join(file), max, &mut out);
            }
        }
        Err(e) => out
            .warnings
            .push(format!("cannot read {}: {e}", main.display())),
    }
    if dot_d {
        let dir = format!("{file}.d");
        let etc = sources.etc.join(&dir);
        if let Some(usr) = &sources.usr {
            read_dir(&usr.join(&dir), Some(&etc), max, &mut out);
        }
        read_dir(&etc, None, max, &mut out);
    }
    out
}

/// Reads `path` if it exists (a missing file is normal).
fn read_file(path: &Path, max: u32, out: &mut Read) {
    match std::fs::read(path) {
        Ok(bytes) => parse_into(path, &bytes, max, out),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => out
            .warnings
            .push(format!("cannot read {}: {e}", path.display())),
    }
}

/// The `*.conf` files of `dir`, except those `overridden_by` also has.
fn read_dir(dir: &Path, overridden_by: Option<&Path>, max: u32, out: &mut Read) {
    let Ok(listing) = std::fs::read_dir(dir) else {
        return;
    };
    for item in listing.flatten() {
        let name = item.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') || name.len() <= 5 || !name.ends_with(".conf") {
            continue;
        }
        if overridden_by.is_some_and(|o| std::fs::symlink_metadata(o.join(name)).is_ok()) {
            continue;
        }
        read_file(&dir.join(name), max, out);
    }
}

fn parse_into(path: &Path, bytes: &[u8], max: u32, out: &mut Read) {
    for line in bytes.split(|b| *b == b'\n') {
        let line = String::from_utf8_lossy(line);
        match parse_line(&line) {
            Line::Blank => {}
            Line::Entry(number, name) => {
                if number >= 0 && i64::from(number) <= i64::from(max) {
                    out.entries.push(Entry {
                        number: number as u32,
                        name: name.to_owned(),
                    });
                }
            }
            Line::Corrupt => {
                out.warnings.push(format!(
                    "Database {} is corrupted at {}",
                    path.display(),
                    line.trim_start_matches([' ', '\t'])
                ));
                return;
            }
        }
    }
}

/// One line of a name file.
#[derive(Debug, PartialEq, Eq)]
enum Line<'a> {
    /// Empty or a comment.
    Blank,
    /// The number as C's `int` holds it (possibly negative), and the name.
    Entry(i32, &'a str),
    Corrupt,
}

/// `sscanf(p, "0x%x %s")`, then `sscanf(p, "%d %s")`, as `ip` tries them.
fn parse_line(line: &str) -> Line<'_> {
    let p = line.trim_start_matches([' ', '\t']);
    if p.is_empty() || p.starts_with('#') {
        return Line::Blank;
    }
    let entry = p
        .strip_prefix("0x")
        .and_then(|rest| scan(rest, 16))
        .or_else(|| scan(p, 10));
    match entry {
        Some((number, name)) => Line::Entry(number, name),
        None => Line::Corrupt,
    }
}

/// `%x %s` or `%d %s` at the start of `s`: C's conversions skip leading
/// white space and take a sign; the number lands in an `int` (its low 32
/// bits).
fn scan(s: &str, radix: u32) -> Option<(i32, &str)> {
    let s = s.trim_start_matches(is_c_space);
    let (negative, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let s = if radix == 16 {
        s.strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .filter(|rest| rest.starts_with(|c: char| c.is_ascii_hexdigit()))
            .unwrap_or(s)
    } else {
        s
    };
    let digits = s.len() - s.trim_start_matches(|c: char| c.is_digit(radix)).len();
    if digits == 0 {
        return None;
    }
    // strtol saturates at the long's range; the int keeps the low bits.
    let value = i64::from_str_radix(&s[..digits], radix).unwrap_or(i64::MAX);
    let value = if negative {
        value.wrapping_neg()
    } else {
        value
    };
    let rest = s[digits..].trim_start_matches(is_c_space);
    let name_len = rest.len() - rest.trim_start_matches(|c| !is_c_space(c)).len();
    if name_len == 0 {
        return None;
    }
    Some((value as i32, &rest[..name_len]))
}

/// C's `isspace`.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_as_ip_reads_them() {
        assert_eq!(parse_line("254\tmain"), Line::Entry(254, "main"));
        assert_eq!(
            parse_line("  \t 1234 blue # ours"),
            Line::Entry(1234, "blue")
        );
        assert_eq!(parse_line("0x10 sixteen"), Line::Entry(16, "sixteen"));
        assert_eq!(parse_line("0xff\tff"), Line::Entry(255, "ff"));
        assert_eq!(parse_line("100 foo#bar"), Line::Entry(100, "foo#bar"));
        assert_eq!(parse_line("100 blue\r"), Line::Entry(100, "blue"));
        assert_eq!(parse_line("-1 minus"), Line::Entry(-1, "minus"));
        assert_eq!(parse_line("0xffffffff wraps"), Line::Entry(-1, "wraps"));
        assert_eq!(parse_line("# 1 comment"), Line::Blank);
        assert_eq!(parse_line("   "), Line::Blank);
        assert_eq!(parse_line(""), Line::Blank);
        assert_eq!(parse_line("100"), Line::Corrupt);
        assert_eq!(parse_line("blue 100"), Line::Corrupt);
        // `0x` without digits is not hex: `%d` reads the 0, `%s` the rest.
        assert_eq!(parse_line("0xg name"), Line::Entry(0, "xg"));
    }

    struct Dir(PathBuf);

    impl Dir {
        fn new(tag: &str) -> Dir {
            let path = std::env::temp_dir().join(format!(
                "rt-names-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }

        fn write(&self, name: &str, text: &str) -> &Dir {
            let path = self.0.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
            self
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn pairs(read: &Read) -> Vec<(u32, &str)> {
        read.entries
            .iter()
            .map(|e| (e.number, e.name.as_str()))
            .collect()
    }

    #[test]
    fn a_corrupt_line_ends_the_file_keeping_what_came_before() {
        let d = Dir::new("corrupt");
        d.write(
            "rt_protos",
            "# comment\n200 mine\n0x20 hex\nbroken\n201 lost\n",
        );
        let read = read(&Sources::only(&d.0), "rt_protos", 255, false);
        assert_eq!(pairs(&read), vec![(200, "mine"), (32, "hex")]);
        assert_eq!(read.warnings.len(), 1);
        assert!(
            read.warnings[0].contains("corrupted at broken"),
            "{:?}",
            read.warnings
        );
    }

    #[test]
    fn numbers_beyond_the_file_s_range_are_skipped() {
        let d = Dir::new("range");
        d.write("rt_scopes", "256 big\n-3 negative\n7 seven\n");
        d.write("rt_tables", "100000 wide\n0x80000000 sign\n");
        let sources = Sources::only(&d.0);
        assert_eq!(
            pairs(&read(&sources, "rt_scopes", 255, false)),
            vec![(7, "seven")]
        );
        assert_eq!(
            pairs(&read(&sources, "rt_tables", u32::MAX, true)),
            vec![(100000, "wide")]
        );
    }

    #[test]
    fn dot_d_files_come_after_the_file_and_etc_overrides_usr() {
        let etc = Dir::new("etc");
        let usr = Dir::new("usr");
        etc.write("rt_tables", "10 ten\n");
        etc.write("rt_tables.d/site.conf", "10 TEN\n11 eleven\n");
        etc.write("rt_tables.d/ignored.txt", "12 not-conf\n");
        etc.write("rt_tables.d/.hidden.conf", "13 hidden\n");
        usr.write("rt_tables", "20 usr-file-unused\n");
        usr.write("rt_tables.d/site.conf", "14 shadowed\n");
        usr.write("rt_tables.d/vendor.conf", "15 vendor\n");
        let sources = Sources {
            etc: etc.0.clone(),
            usr: Some(usr.0.clone()),
        };
        let read = read(&sources, "rt_tables", u32::MAX, true);
        assert_eq!(
            pairs(&read),
            vec![(10, "ten"), (15, "vendor"), (10, "TEN"), (11, "eleven")]
        );
    }

    #[test]
    fn usr_share_serves_only_where_etc_has_no_file() {
        let etc = Dir::new("etc-empty");
        let usr = Dir::new("usr-full");
        usr.write("rt_protos", "99 openr\n250 vendor\n");
        usr.write("rt_realms", "1 one\n");
        etc.write("rt_realms", "2 two\n");
        let sources = Sources {
            etc: etc.0.clone(),
            usr: Some(usr.0.clone()),
        };
        assert_eq!(
            pairs(&read(&sources, "rt_protos", 255, true)),
            vec![(99, "openr"), (250, "vendor")]
        );
        assert_eq!(
            pairs(&read(&sources, "rt_realms", 255, false)),
            vec![(2, "two")]
        );
        let alone = Sources::only(&etc.0);
        assert!(read(&alone, "rt_protos", 255, true).entries.is_empty());
    }
}
