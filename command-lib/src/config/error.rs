//! Why a configuration file was refused.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::certificate::CertificateError;

/// A place in the configuration file, both 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// Line number, from 1.
    pub line: usize,
    /// Column number in characters, from 1.
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` in `text` (clamped to the text).
    pub(crate) fn of_offset(text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        let column = before[line_start..].chars().count() + 1;
        Position { line, column }
    }
}

/// Writes `:line:column` when the position is known, nothing otherwise, so a
/// message reads `config.toml:12:5: ...` like a compiler's.
struct At(Option<Position>);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(Position { line, column }) => write!(f, ":{line}:{column}"),
            None => Ok(()),
        }
    }
}

/// A refused configuration. Every variant names the configuration file
/// (`path`); all but the first two name the offending key as a dotted path
/// such as `clusters.web.frontends[1].path_type`.
///
/// The `Display` form is the whole message for a person; the fields let a
/// program tell the cases apart.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file itself could not be read.
    #[error("cannot read the configuration file {}: {source}", path.display())]
    ReadConfig {
        /// The configuration file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The file is not valid TOML.
    #[error("{}{}: invalid TOML: {message}", path.display(), At(*position))]
    Syntax {
        /// The configuration file.
        path: PathBuf,
        /// Where the parser stopped, when known.
        position: Option<Position>,
        /// What the parser expected.
        message: String,
    },
    /// A key is unknown, missing, or holds a value of the wrong type or
    /// form (an unknown protocol, an address that does not parse, ...).
    #[error("{}{}: {key}: {message}", path.display(), At(*position))]
    Key {
        /// The configuration file.
        path: PathBuf,
        /// Dotted path of the key (`.` for the top level).
        key: String,
        /// Where the value starts, when known.
        position: Option<Position>,
        /// What was wrong.
        message: String,
    },
    /// A file named by the configuration (certificate, key, answer
    /// template...) could not be read.
    #[error("{}: {key}: cannot read {}: {source}", path.display(), file.display())]
    File {
        /// The configuration file.
        path: PathBuf,
        /// Dotted path of the key that names the file.
        key: String,
        /// The file, resolved against the configuration file's folder.
        file: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// A certificate, chain or key file was read but refused.
    #[error("{}: {key}: {}: {source}", path.display(), file.display())]
    Certificate {
        /// The configuration file.
        path: PathBuf,
        /// Dotted path of the key that names the refused file.
        key: String,
        /// The refused file.
        file: PathBuf,
        /// Why it was refused.
        source: CertificateError,
    },
    /// Values that parse but cannot work (alone or together).
    #[error("{}: {key}: {message}", path.display())]
    Invalid {
        /// The configuration file.
        path: PathBuf,
        /// Dotted path of the key at fault.
        key: String,
        /// What is wrong and, where it helps, what would be right.
        message: String,
    },
}

impl ConfigError {
    /// The dotted key path the error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::ReadConfig { .. } | ConfigError::Syntax { .. } => None,
            ConfigError::Key { key, .. }
            | ConfigError::File { key, .. }
            | ConfigError::Certificate { key, .. }
            | ConfigError::Invalid { key, .. } => Some(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters_from_one() {
        let text = "a = 1\nbé = x\n";
        assert_eq!(
            Position::of_offset(text, 0),
            Position { line: 1, column: 1 }
        );
        // 'x' is the 6th character of line 2 ('é' is two bytes).
        let offset = text.find('x').unwrap();
        assert_eq!(
            Position::of_offset(text, offset),
            Position { line: 2, column: 6 }
        );
        assert_eq!(Position::of_offset(text, 10_000).line, 3);
    }
}
