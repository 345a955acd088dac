//! `--color`: adds in green and deletes in red, on a terminal.

use std::io::IsTerminal;

/// `--color` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Color {
    /// Colour when stdout is a terminal, NO_COLOR is unset and TERM is not
    /// "dumb".
    Auto,
    Always,
    Never,
}

/// Whether and how lines are coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paint(bool);

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const RESET: &str = "\x1b[0m";

impl Paint {
    pub const NONE: Paint = Paint(false);
    pub const ANSI: Paint = Paint(true);

    /// What `choice` means for this process's stdout.
    pub fn for_stdout(choice: Color) -> Paint {
        let wanted = match choice {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => {
                std::io::stdout().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::env::var("TERM").map_or(true, |t| t != "dumb")
            }
        };
        Paint(wanted)
    }

    /// `line` in the colour of its action (delete: red, add: green).
    pub fn line(self, line: &str, delete: bool) -> String {
        let (start, end) = self.codes(delete);
        format!("{start}{line}{end}")
    }

    /// What goes before and after a line of this action (nothing when
    /// lines are not coloured).
    pub fn codes(self, delete: bool) -> (&'static str, &'static str) {
        match (self.0, delete) {
            (false, _) => ("", ""),
            (true, true) => (RED, RESET),
            (true, false) => (GREEN, RESET),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_only_when_asked() {
        assert_eq!(Paint::NONE.line("x", true), "x");
        assert_eq!(Paint::ANSI.line("x", true), "\x1b[31mx\x1b[0m");
        assert_eq!(Paint::ANSI.line("x", false), "\x1b[32mx\x1b[0m");
        assert_eq!(Paint::for_stdout(Color::Never), Paint::NONE);
        assert_eq!(Paint::for_stdout(Color::Always), Paint::ANSI);
    }
}
