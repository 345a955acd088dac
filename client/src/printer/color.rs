//! `--color`: live adds in green and deletes in red, on a terminal; the
//! snapshot in the terminal's own colour.

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

/// What a line says, as far as its colour goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Part of a snapshot: the state when the subscription began.
    Snapshot,
    /// A change that added or replaced an object.
    Add,
    /// A change that removed an object.
    Delete,
}

impl Tone {
    /// The tone of a change with this action and origin.
    pub fn of(change: &routewatch_proto::v1::Change) -> Tone {
        use routewatch_proto::v1::{Action, Origin};
        if change.action == Action::Delete as i32 {
            Tone::Delete
        } else if change.origin == Origin::Dump as i32 {
            Tone::Snapshot
        } else {
            Tone::Add
        }
    }
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

    /// `line` in the colour of its tone (delete: red, live add: green,
    /// snapshot: uncoloured).
    pub fn line(self, line: &str, tone: Tone) -> String {
        let (start, end) = self.codes(tone);
        format!("{start}{line}{end}")
    }

    /// What goes before and after a line of this tone (nothing when lines
    /// are not coloured, nor for the snapshot: it stands apart from the
    /// changes that follow it).
    pub fn codes(self, tone: Tone) -> (&'static str, &'static str) {
        match (self.0, tone) {
            (false, _) | (true, Tone::Snapshot) => ("", ""),
            (true, Tone::Delete) => (RED, RESET),
            (true, Tone::Add) => (GREEN, RESET),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_only_when_asked() {
        assert_eq!(Paint::NONE.line("x", Tone::Delete), "x");
        assert_eq!(Paint::ANSI.line("x", Tone::Delete), "\x1b[31mx\x1b[0m");
        assert_eq!(Paint::ANSI.line("x", Tone::Add), "\x1b[32mx\x1b[0m");
        assert_eq!(Paint::ANSI.line("x", Tone::Snapshot), "x");
        assert_eq!(Paint::for_stdout(Color::Never), Paint::NONE);
        assert_eq!(Paint::for_stdout(Color::Always), Paint::ANSI);
    }
}
