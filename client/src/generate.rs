//! `routewatch completions SHELL` and `routewatch man`: generated from the
//! command line's own definition, so they never drift from `--help`.

use std::io::{self, Write};
use std::path::Path;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::ClientError;

/// Prints the completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> Result<(), ClientError> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "routewatch", &mut out);
    io::stdout().write_all(&out)?;
    Ok(())
}

/// Prints the manual page, or writes one per command into `dir`.
pub fn man(dir: Option<&Path>) -> Result<(), ClientError> {
    let command = Cli::command();
    match dir {
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(command).render(&mut out)?;
            io::stdout().write_all(&out)?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            clap_mangen::generate_to(command, dir)?;
        }
    }
    Ok(())
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

    #[test]
    fn the_manual_page_is_roff_with_every_command() {
        let mut out = Vec::new();
        clap_mangen::Man::new(Cli::command())
            .render(&mut out)
            .unwrap();
        let page = String::from_utf8(out).unwrap();
        assert!(page.starts_with(".ie"), "{}", &page[..40]);
        assert!(page.contains(".TH routewatch 1"));
        for command in ["tail", "show", "info", "completions"] {
            assert!(page.contains(command), "{command} missing");
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
