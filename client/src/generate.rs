//! `routewatch completions SHELL` and `routewatch man`: generated from the
//! command line's own definition, so they never drift from `--help`.
//!
//! The manual pages add what `--help` has no room for: an ENVIRONMENT
//! section (every variable a flag reads, and the ones read directly) and an
//! EXIT STATUS section. `routewatch-agent.8` comes from the agent's own
//! command line.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use clap::{Command, CommandFactory};

use crate::cli::Cli;
use crate::error::exit;
use crate::ClientError;

/// Prints the completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> Result<(), ClientError> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "routewatch", &mut out);
    io::stdout().write_all(&out)?;
    Ok(())
}

/// Prints the manual page (the agent's with `agent`), or writes every page
/// into `dir`.
pub fn man(dir: Option<&Path>, agent: bool) -> Result<(), ClientError> {
    match dir {
        None => {
            let page = if agent {
                agent_page()
            } else {
                client_page(&built_cli(), true)
            }?;
            io::stdout().write_all(&page)?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            for (name, page) in pages()? {
                std::fs::write(dir.join(name), page)?;
            }
        }
    }
    Ok(())
}

/// Every page, by file name: routewatch.1, one per command
/// (routewatch-tail.1, ...), routewatch-agent.8.
pub fn pages() -> io::Result<Vec<(String, Vec<u8>)>> {
    fn walk(cmd: &Command, root: bool, pages: &mut Vec<(String, Vec<u8>)>) -> io::Result<()> {
        let name = cmd
            .get_display_name()
            .unwrap_or_else(|| cmd.get_name())
            .to_owned();
        pages.push((format!("{name}.1"), client_page(cmd, root)?));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, false, pages)?;
        }
        Ok(())
    }
    let mut pages = Vec::new();
    walk(&built_cli(), true, &mut pages)?;
    pages.push(("routewatch-agent.8".to_owned(), agent_page()?));
    Ok(pages)
}

fn built_cli() -> Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// A page of `routewatch` or one of its commands (`root`: the whole
/// program's, whose environment is every command's).
fn client_page(cmd: &Command, root: bool) -> io::Result<Vec<u8>> {
    let mut vars = BTreeMap::new();
    if root {
        for sub in cmd.get_subcommands() {
            flag_variables(sub, &mut vars);
        }
    } else {
        flag_variables(cmd, &mut vars);
    }
    vars.insert(
        "ROUTEWATCH_LOG".to_owned(),
        "What is logged on stderr, as a tracing filter (default: warn; e.g. info, routewatch_client=debug).".to_owned(),
    );
    vars.insert(
        "NO_COLOR".to_owned(),
        "When set and not empty, --color auto does not colour.".to_owned(),
    );
    let statuses: Vec<(u8, &str)> = exit::STATUSES.to_vec();
    page(
        clap_mangen::Man::new(cmd.clone()),
        &vars,
        &statuses,
        "Lines go to stdout; markers, notices and errors to stderr.",
    )
}

/// `routewatch-agent.8`.
fn agent_page() -> io::Result<Vec<u8>> {
    let mut cmd = routewatch_agent::cli::Cli::command();
    cmd.build();
    let mut vars = BTreeMap::new();
    flag_variables(&cmd, &mut vars);
    vars.insert(
        "ROUTEWATCH_LOG".to_owned(),
        "What is logged on stderr, as a tracing filter (default: info).".to_owned(),
    );
    let statuses = [
        (0, "stopped by SIGTERM or SIGINT, after every subscriber's stream was closed"),
        (1, "the agent could not start or stopped on an error (rtnetlink, the listening address, TLS files, --state-dir): the message says which"),
        (2, "the command line or an environment variable is wrong"),
    ];
    page(
        clap_mangen::Man::new(cmd).section("8"),
        &vars,
        &statuses,
        "",
    )
}

/// Every variable a flag of `cmd` reads, with what it stands for.
fn flag_variables(cmd: &Command, vars: &mut BTreeMap<String, String>) {
    for arg in cmd.get_arguments() {
        let Some(var) = arg.get_env() else { continue };
        let var = var.to_string_lossy().into_owned();
        let what = match arg.get_long() {
            Some(long) => format!("--{long}"),
            None => {
                let names = arg
                    .get_value_names()
                    .map(|n| n.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(" "))
                    .unwrap_or_default();
                format!("the {names} arguments, separated by commas")
            }
        };
        vars.entry(var)
            .or_insert_with(|| format!("Same as {what}; the command line wins."));
    }
}

/// clap_mangen's page with ENVIRONMENT and EXIT STATUS sections before
/// VERSION.
fn page(
    man: clap_mangen::Man,
    vars: &BTreeMap<String, String>,
    statuses: &[(u8, &str)],
    streams: &str,
) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    man.render(&mut out)?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let mut extra = String::from(".SH ENVIRONMENT\n");
    for (var, what) in vars {
        extra.push_str(&format!(".TP\n\\fB{var}\\fR\n{}\n", roff(what)));
    }
    extra.push_str(".SH \"EXIT STATUS\"\n");
    for (code, what) in statuses {
        extra.push_str(&format!(".TP\n\\fB{code}\\fR\n{}\n", roff(what)));
    }
    if !streams.is_empty() {
        extra.push_str(&format!(".PP\n{}\n", roff(streams)));
    }
    let text = match text.find("\n.SH VERSION") {
        Some(at) => format!("{}\n{extra}{}", &text[..at], &text[at + 1..]),
        None => format!("{text}{extra}"),
    };
    Ok(text.into_bytes())
}

/// Text safe in a roff paragraph.
fn roff(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_scripts_name_commands_and_filter_flags() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "routewatch", &mut out);
            let script = String::from_utf8(out).unwrap();
            for word in ["tail", "show", "info", "gateway-within", "not"] {
                assert!(script.contains(word), "{shell}: {word} missing");
            }
        }
    }

    fn page_text(name: &str) -> String {
        let pages = pages().unwrap();
        let (_, page) = pages
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no page {name}"));
        String::from_utf8(page.clone()).unwrap()
    }

    #[test]
    fn the_manual_page_is_roff_with_every_command() {
        let page = page_text("routewatch.1");
        assert!(page.starts_with(".ie"), "{}", &page[..40]);
        assert!(page.contains(".TH routewatch 1"));
        for command in ["tail", "show", "info", "completions"] {
            assert!(page.contains(command), "{command} missing");
        }
    }

    #[test]
    fn every_page_has_environment_and_exit_status_sections() {
        let names: Vec<String> = pages().unwrap().into_iter().map(|(n, _)| n).collect();
        for name in [
            "routewatch.1",
            "routewatch-tail.1",
            "routewatch-show.1",
            "routewatch-agent.8",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} missing: {names:?}");
        }
        for name in &names {
            let page = page_text(name);
            let env = page
                .find(".SH ENVIRONMENT")
                .unwrap_or_else(|| panic!("{name}: no ENVIRONMENT"));
            let status = page
                .find(".SH \"EXIT STATUS\"")
                .unwrap_or_else(|| panic!("{name}: no EXIT STATUS"));
            assert!(env < status, "{name}");
            assert!(page.contains("\\fBROUTEWATCH_LOG\\fR"), "{name}");
        }
        let tail = page_text("routewatch-tail.1");
        for var in [
            "ROUTEWATCH_TARGETS",
            "ROUTEWATCH_COUNT",
            "ROUTEWATCH_CONNECT_TIMEOUT",
            "ROUTEWATCH_RETRIES",
        ] {
            assert!(tail.contains(&format!("\\fB{var}\\fR")), "tail: {var}");
        }
        for (code, _) in exit::STATUSES {
            assert!(
                tail.contains(&format!(".TP\n\\fB{code}\\fR\n")),
                "tail: status {code}"
            );
        }
        let agent = page_text("routewatch-agent.8");
        assert!(
            agent.contains(".TH routewatch-agent 8"),
            "{}",
            &agent[..200]
        );
        assert!(
            agent.contains("\\fBROUTEWATCH_LISTEN\\fR"),
            "agent variables"
        );
    }

    #[test]
    fn the_readme_lists_every_exit_status() {
        let readme = include_str!("../../README.md");
        let section = readme
            .split("### Exit status")
            .nth(1)
            .expect("README has an Exit status section");
        for (code, _) in exit::STATUSES {
            assert!(
                section.contains(&format!("| {code} |")),
                "README: status {code}"
            );
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
