//! What an operator sees when the command line (or the environment) is
//! wrong: clap's own message, plus the variable a bad value came from, and
//! for errors found after parsing, the subcommand's usage line.

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, Command};

/// The environment variable (and its value) that gave the argument `err`
/// complains about, when the command line itself did not give it.
pub fn env_source(
    command: &Command,
    err: &clap::Error,
    argv: &[OsString],
) -> Option<(String, String)> {
    if !matches!(
        err.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation | ErrorKind::InvalidUtf8
    ) {
        return None;
    }
    let Some(ContextValue::String(invalid)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    let mut found = None;
    visit(command, &mut |arg| {
        if found.is_some() || !names(arg, invalid) {
            return;
        }
        let Some(var) = arg.get_env() else { return };
        let Some(value) = std::env::var_os(var) else {
            return;
        };
        if given_on_command_line(arg, argv) {
            return;
        }
        found = Some((
            var.to_string_lossy().into_owned(),
            value.to_string_lossy().into_owned(),
        ));
    });
    found
}

/// clap's message for `err`, with the variable a bad value came from
/// named after its first line, and the subcommand's usage line where clap
/// gives none.
pub fn explain(command: &Command, err: &clap::Error, argv: &[OsString]) -> String {
    let mut text = err.render().to_string();
    if let Some((var, value)) = env_source(command, err, argv) {
        let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
        text = format!(
            "{first}\n  (the value {value:?} comes from the environment variable {var}: fix or unset it)\n{rest}"
        );
    }
    if !text.contains("Usage:") {
        let hint = "For more information, try '--help'.";
        let kept = text
            .trim_end()
            .strip_suffix(hint)
            .unwrap_or(&text)
            .trim_end();
        let subcommand = argv
            .iter()
            .skip(1)
            .filter_map(|a| a.to_str())
            .find(|a| command.find_subcommand(a).is_some());
        text = format!("{kept}\n\n{}\n", usage_of(command.clone(), subcommand));
    }
    text
}

/// The usage line of `subcommand` (the whole command's when it has none
/// by that name), with the hint clap gives after its own errors.
pub fn usage_of(mut command: Command, subcommand: Option<&str>) -> String {
    command.build();
    let name = command.get_name().to_owned();
    let (usage, help) = match subcommand.and_then(|s| command.find_subcommand_mut(s)) {
        Some(sub) => {
            let help = format!("{name} {} --help", sub.get_name());
            (sub.render_usage().to_string(), help)
        }
        None => (command.render_usage().to_string(), format!("{name} --help")),
    };
    format!("{usage}\n\nFor more information, try '{help}'.")
}

fn visit(command: &Command, f: &mut dyn FnMut(&Arg)) {
    for arg in command.get_arguments() {
        f(arg);
    }
    for sub in command.get_subcommands() {
        visit(sub, f);
    }
}

/// Whether clap's rendering of an argument (`--connect-timeout <SECS>`,
/// `[TARGET]...`) names `arg`.
fn names(arg: &Arg, invalid: &str) -> bool {
    let first = invalid.split_whitespace().next().unwrap_or("");
    if let Some(long) = arg.get_long() {
        return first == format!("--{long}");
    }
    if let Some(short) = arg.get_short() {
        return first == format!("-{short}");
    }
    arg.get_value_names().is_some_and(|names| {
        names
            .iter()
            .any(|n| invalid.trim_matches(['[', ']', '<', '>', '.']) == n.as_str())
    })
}

fn given_on_command_line(arg: &Arg, argv: &[OsString]) -> bool {
    if arg.is_positional() {
        // Positional values on the command line take the variable's place
        // only when there are any; clap reports those as such.
        return false;
    }
    argv.iter().any(|a| {
        let a = a.to_string_lossy();
        arg.get_long()
            .is_some_and(|l| a == format!("--{l}") || a.starts_with(&format!("--{l}=")))
            || arg
                .get_short()
                .is_some_and(|s| a.starts_with(&format!("-{s}")) && !a.starts_with("--"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    use crate::cli::Cli;

    #[test]
    fn a_subcommand_s_usage_names_it() {
        let usage = usage_of(Cli::command(), Some("tail"));
        assert!(usage.starts_with("Usage: routewatch tail"), "{usage}");
        assert!(usage.ends_with("try 'routewatch tail --help'."), "{usage}");
    }

    #[test]
    fn a_bad_value_on_the_command_line_is_not_blamed_on_the_environment() {
        let argv: Vec<OsString> = ["routewatch", "show", "--connect-timeout", "abc"]
            .map(OsString::from)
            .to_vec();
        let err = Cli::command().try_get_matches_from(&argv).unwrap_err();
        assert_eq!(env_source(&Cli::command(), &err, &argv), None);
        let text = explain(&Cli::command(), &err, &argv);
        assert!(!text.contains("environment"), "{text}");
        assert!(text.contains("Usage: routewatch show"), "{text}");
        assert!(text.contains("try 'routewatch show --help'"), "{text}");
    }
}
