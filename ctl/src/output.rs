//! Where results go: stdout for results, stderr for progress and errors.
//!
//! Two renderers share the same values. For people: a one-line result, then
//! boxed tables, colour only on a terminal without `NO_COLOR`, progress on
//! stderr when it is a terminal. For scripts (`--json`): exactly one JSON
//! document on stdout per command (one per line for streams), and nothing
//! else on stdout, ever.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anstyle::{AnsiColor, Color, Reset, Style};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use prettytable::Table;
use serde::Serialize;
use serde_json::Value;

use crate::error::CliError;

/// One piece of human output.
#[derive(Debug, Clone)]
pub enum Block {
    /// A line of text.
    Text(String),
    /// A titled table.
    Table(Table),
}

#[cfg(test)]
impl Block {
    /// The block as plain text (no colour), as it would print.
    pub fn plain(&self) -> String {
        match self {
            Block::Text(text) => format!("{text}\n"),
            Block::Table(table) => table.to_string(),
        }
    }
}

/// How this run prints.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    json: bool,
    color: bool,
    stderr_is_terminal: bool,
}

/// The styles of the result mark and the error label, each written as a
/// colour then bold (`ESC[32m ESC[1m`), as before anstyle rendered them.
const GREEN: Style = Style::new().fg_color(Some(Color::Ansi(AnsiColor::Green)));
const RED: Style = Style::new().fg_color(Some(Color::Ansi(AnsiColor::Red)));
const BOLD: Style = Style::new().bold();
const RESET: Reset = Reset;
/// Erases the screen and moves the cursor home (ECMA-48 ED 2 and CUP):
/// cursor control, which anstyle (styles only) does not cover.
const CLEAR_SCREEN: &str = "\x1b[2J\x1b[H";

impl Output {
    /// Looks at the terminals and the environment.
    pub fn detect(json: bool) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
        Output {
            json,
            color: std::io::stdout().is_terminal() && !no_color,
            stderr_is_terminal: std::io::stderr().is_terminal(),
        }
    }

    /// Whether results are JSON.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// The one-line result of a command (human output only).
    pub fn result_line(&self, text: &str) {
        if self.json {
            return;
        }
        if self.color {
            write_stdout(&format!(
                "{}{}✔{} {text}\n",
                GREEN.render(),
                BOLD.render(),
                RESET.render()
            ));
        } else {
            write_stdout(&format!("{text}\n"));
        }
    }

    /// Human blocks, in order.
    pub fn blocks(&self, blocks: &[Block]) {
        if self.json {
            return;
        }
        for block in blocks {
            match block {
                Block::Text(text) => {
                    write_stdout(&format!("{text}\n"));
                }
                Block::Table(table) => {
                    if self.color {
                        // Colours the header cells; falls back to plain text
                        // by itself when the terminal cannot.
                        table.print_tty(false).ok();
                    } else {
                        write_stdout(&table.to_string());
                    }
                }
            }
        }
    }

    /// The JSON document of a command.
    pub fn json(&self, value: &Value) {
        self.document(value);
    }

    /// The JSON document of a command, serialized straight from `value`:
    /// no intermediate `Value` tree, and the fields in their declaration
    /// order, as Sozu's command line prints them.
    pub fn document(&self, value: &impl Serialize) {
        let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_else(|_| b"{}".to_vec());
        bytes.push(b'\n');
        write_stdout_bytes(&bytes);
    }

    /// One JSON object on its own line, flushed at once (streams). False
    /// when stdout is gone (the reader quit), so a stream can stop.
    pub fn json_line(&self, value: &Value) -> bool {
        let mut bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
        bytes.push(b'\n');
        write_stdout_bytes(&bytes)
    }

    /// A line of human output flushed at once (streams). False when stdout
    /// is gone.
    pub fn stream_line(&self, text: &str) -> bool {
        write_stdout(&format!("{text}\n"))
    }

    /// Clears the terminal before a refreshed display (only on a terminal).
    pub fn clear_screen(&self) {
        if !self.json && std::io::stdout().is_terminal() {
            write_stdout(CLEAR_SCREEN);
        }
    }

    /// A remark for the person at the terminal, on stderr.
    pub fn note(&self, text: &str) {
        if !self.json {
            eprintln!("{text}");
        }
    }

    /// Reports a failed command: JSON on stdout (on one line, so it also
    /// ends a stream of JSON lines cleanly), or a message on stderr.
    pub fn error(&self, error: &CliError) {
        if self.json && error.result_printed {
            eprintln!("error: {error}");
        } else if self.json {
            self.json_line(&error.to_json());
        } else if self.color && self.stderr_is_terminal {
            eprintln!(
                "{}{}error:{} {error}",
                RED.render(),
                BOLD.render(),
                RESET.render()
            );
        } else {
            eprintln!("error: {error}");
        }
    }

    /// A spinner on stderr that shows each progress message, when stderr is
    /// a terminal and the output is for people; otherwise it shows nothing.
    pub fn spinner(&self) -> Progress {
        if self.json || !self.stderr_is_terminal {
            return Progress(None);
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress(Some(bar))
    }

    /// A progress bar of `total` steps on stderr (spinner when the total is
    /// unknown), under the same conditions as [`Output::spinner`].
    pub fn bar(&self, total: Option<u64>) -> Progress {
        let Some(total) = total else {
            return self.spinner();
        };
        if self.json || !self.stderr_is_terminal {
            return Progress(None);
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("[{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Progress(Some(bar))
    }
}

/// Writes and flushes stdout. A closed stdout (`sozu … | head`) is not an
/// error worth a panic: the write is dropped and `false` returned.
fn write_stdout(text: &str) -> bool {
    write_stdout_bytes(text.as_bytes())
}

fn write_stdout_bytes(bytes: &[u8]) -> bool {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes).is_ok() && stdout.flush().is_ok()
}

/// Progress shown while waiting for a final answer; invisible when the
/// output is not for a person at a terminal.
#[derive(Debug)]
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// Shows a progress message.
    pub fn message(&self, text: &str) {
        if let Some(bar) = &self.0 {
            bar.set_message(text.to_owned());
        }
    }

    /// Advances a bar by one step and shows the message.
    pub fn step(&self, text: &str) {
        if let Some(bar) = &self.0 {
            bar.inc(1);
            bar.set_message(text.to_owned());
        }
    }

    /// Removes the progress display.
    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn styles_write_the_same_escape_codes_as_before() {
        let mark = format!("{}{}✔{}", GREEN.render(), BOLD.render(), RESET.render());
        assert_eq!(mark, "\x1b[32m\x1b[1m✔\x1b[0m");
        assert_eq!(RED.render().to_string(), "\x1b[31m");
    }
}
