//! `completions SHELL` and `man`, generated from the clap definitions so
//! they never drift from the parser.

use std::io::Write;

use clap::CommandFactory;

pub use clap_complete::Shell;

use crate::cli::Args;
use crate::error::{CliError, ErrorKind};

/// Prints the completion script for `shell`.
pub fn completions(shell: Shell) -> Result<(), CliError> {
    let mut command = Args::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "sozu", &mut script);
    write_out(&script)
}

/// Prints the manual page, in roff.
pub fn man() -> Result<(), CliError> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Args::command())
        .render(&mut page)
        .map_err(|error| {
            CliError::new(
                ErrorKind::Io,
                format!("could not render the manual: {error}"),
            )
        })?;
    write_out(&page)
}

fn write_out(bytes: &[u8]) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    // A reader that stops early (`sozu man | head`) is not a failure.
    stdout.write_all(bytes).and_then(|()| stdout.flush()).ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_and_man_mention_the_commands() {
        let mut command = Args::command();
        let mut script = Vec::new();
        clap_complete::generate(Shell::Bash, &mut command, "sozu", &mut script);
        let script = String::from_utf8(script).unwrap();
        assert!(script.contains("health-check") && script.contains("--load-balancing-policy"));
        let mut page = Vec::new();
        clap_mangen::Man::new(Args::command())
            .render(&mut page)
            .unwrap();
        let page = String::from_utf8(page).unwrap();
        assert!(
            page.contains(".TH sozu"),
            "{}",
            &page[..200.min(page.len())]
        );
    }
}
