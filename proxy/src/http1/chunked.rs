//! An incremental decoder of chunked bodies (RFC 9112 §7.1): it is fed the
//! bytes as they arrive, split anywhere, and says which of them are chunk
//! data and where the body ends. Its state is a few integers: extensions and
//! trailers are checked as they pass, never buffered, and their sizes are
//! capped.

use std::ops::Range;

use super::{Refusal, Rule, Side};

/// The default cap on the extensions of one chunk-size line, in bytes.
pub const MAX_EXTENSIONS: usize = 1024;
/// The default cap on the trailer section, in bytes.
pub const MAX_TRAILERS: usize = 8192;
/// The largest chunk size accepted: 2^60 - 1 (15 hex digits).
const MAX_CHUNK_SIZE: u64 = (1 << 60) - 1;
/// The most hex digits a size may have, leading zeros included.
const MAX_SIZE_DIGITS: u8 = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex digits of a chunk size (`digits` so far).
    Size { size: u64, digits: u8 },
    /// Whitespace after the size: only `;` may follow (BWS, §7.1.1).
    SizeSpace { size: u64 },
    /// Inside the extensions of a chunk-size line.
    Extension { size: u64, at: Ext },
    /// The LF ending a chunk-size line.
    SizeLf { size: u64 },
    /// Chunk data, `left` bytes to go.
    Data { left: u64 },
    /// The CR after chunk data.
    DataCr,
    /// The LF after chunk data.
    DataLf,
    /// The start of a trailer line, or the final empty line.
    TrailerStart,
    /// A trailer field name.
    TrailerName,
    /// A trailer field value.
    TrailerValue,
    /// The LF ending a trailer line.
    TrailerLf,
    /// The LF ending the body.
    EndLf,
    /// The body has ended.
    Done,
}

/// Where in `*( BWS ";" BWS name [ BWS "=" BWS value ] )` the decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ext {
    BeforeName,
    Name,
    AfterName,
    BeforeValue,
    Token,
    Quoted,
    QuotedEscape,
    AfterValue,
}

/// What one call to [`ChunkedDecoder::step`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The bytes of the input this step consumed (framing and data): the
    /// caller forwards or drops them, and passes the rest to the next step.
    pub consumed: usize,
    /// The chunk data among them (a range of the input, possibly empty).
    pub data: Range<usize>,
    /// The body ended with the last consumed byte; bytes after it belong to
    /// the next message.
    pub done: bool,
}

/// The running totals of [`ChunkedDecoder::advance`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Advance {
    /// The bytes of the input that belong to this body.
    pub consumed: usize,
    /// How many of them are chunk data.
    pub data: u64,
    /// The body ended after `consumed` bytes.
    pub done: bool,
}

/// The decoder of one chunked body. Create one per message.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    side: Side,
    max_extensions: usize,
    max_trailers: usize,
    extension_bytes: usize,
    trailer_bytes: usize,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl ChunkedDecoder {
    /// A decoder for a body sent by `side` (its refusals are that side's),
    /// with the default caps [`MAX_EXTENSIONS`] and [`MAX_TRAILERS`].
    pub fn new(side: Side) -> Self {
        Self::with_limits(side, MAX_EXTENSIONS, MAX_TRAILERS)
    }

    /// A decoder with caps on the extension bytes of each chunk-size line
    /// and on the bytes of the trailer section.
    pub fn with_limits(side: Side, max_extensions: usize, max_trailers: usize) -> Self {
        ChunkedDecoder {
            state: State::Size { size: 0, digits: 0 },
            side,
            max_extensions,
            max_trailers,
            extension_bytes: 0,
            trailer_bytes: 0,
        }
    }

    /// Whether the body has ended.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Bytes of the current chunk's data still to come (0 when the
    /// decoder is not inside a chunk's data): what may pass without being
    /// looked at (spliced, say), announced with [`ChunkedDecoder::skip_data`].
    pub fn data_left(&self) -> u64 {
        match self.state {
            State::Data { left } => left,
            _ => 0,
        }
    }

    /// Counts `length` bytes of the current chunk's data as passed without
    /// going through [`ChunkedDecoder::step`]; at most [`ChunkedDecoder::data_left`].
    pub fn skip_data(&mut self, length: u64) {
        if let State::Data { left } = self.state {
            let length = length.min(left);
            self.state = if length == left {
                State::DataCr
            } else {
                State::Data {
                    left: left - length,
                }
            };
        }
    }

    /// Consumes framing bytes of `input` up to and including at most one run
    /// of chunk data (or the end of the body, or of the input). A refusal
    /// leaves the connection unusable: answer and close.
    pub fn step(&mut self, input: &[u8]) -> Result<Step, Refusal> {
        let mut index = 0;
        while index < input.len() {
            match self.state {
                State::Done => break,
                State::Data { left } => {
                    let available = (input.len() - index) as u64;
                    let take = left.min(available) as usize;
                    self.state = if take as u64 == left {
                        State::DataCr
                    } else {
                        State::Data {
                            left: left - take as u64,
                        }
                    };
                    return Ok(Step {
                        consumed: index + take,
                        data: index..index + take,
                        done: false,
                    });
                }
                _ => {
                    self.byte(input[index])
                        .map_err(|rule| Refusal::new(rule, self.side))?;
                    index += 1;
                }
            }
        }
        Ok(Step {
            consumed: index,
            data: index..index,
            done: self.is_done(),
        })
    }

    /// Runs [`ChunkedDecoder::step`] over all of `input`: how many bytes
    /// belong to the body, how many of them are data, and whether it ended.
    pub fn advance(&mut self, input: &[u8]) -> Result<Advance, Refusal> {
        let mut advance = Advance::default();
        while advance.consumed < input.len() && !advance.done {
            let step = self.step(&input[advance.consumed..])?;
            advance.consumed += step.consumed;
            advance.data += step.data.len() as u64;
            advance.done = step.done;
            if step.consumed == 0 {
                break;
            }
        }
        advance.done = self.is_done();
        Ok(advance)
    }

    /// One byte of framing (anything but chunk data).
    fn byte(&mut self, byte: u8) -> Result<(), Rule> {
        self.state = match self.state {
            State::Size { size, digits } => size_byte(size, digits, byte)?,
            State::SizeSpace { size } => match byte {
                b' ' | b'\t' => State::SizeSpace { size },
                b';' => self.extension(size, Ext::BeforeName)?,
                _ => return Err(Rule::MalformedChunkSize),
            },
            State::Extension { size, at } => self.extension_byte(size, at, byte)?,
            State::SizeLf { size } => match (byte, size) {
                (b'\n', 0) => State::TrailerStart,
                (b'\n', left) => State::Data { left },
                _ => return Err(Rule::MalformedChunkSize),
            },
            State::DataCr if byte == b'\r' => State::DataLf,
            State::DataLf if byte == b'\n' => State::Size { size: 0, digits: 0 },
            State::DataCr | State::DataLf => return Err(Rule::MalformedChunkData),
            State::TrailerStart
            | State::TrailerName
            | State::TrailerValue
            | State::TrailerLf
            | State::EndLf => self.trailer_byte(byte)?,
            State::Data { .. } | State::Done => unreachable!("handled by step"),
        };
        Ok(())
    }

    fn extension(&mut self, size: u64, at: Ext) -> Result<State, Rule> {
        self.extension_bytes += 1;
        if self.extension_bytes > self.max_extensions {
            return Err(Rule::MalformedChunkExtension);
        }
        Ok(State::Extension { size, at })
    }

    fn extension_byte(&mut self, size: u64, at: Ext, byte: u8) -> Result<State, Rule> {
        let space = byte == b' ' || byte == b'\t';
        let next = match (at, byte) {
            (Ext::Quoted, b'"') => Ext::AfterValue,
            (Ext::Quoted, b'\\') => Ext::QuotedEscape,
            (Ext::Quoted | Ext::QuotedEscape, b'\t' | b' '..=b'~' | 0x80..=0xff) => Ext::Quoted,
            (Ext::Quoted | Ext::QuotedEscape, _) => return Err(Rule::MalformedChunkExtension),
            (Ext::Name | Ext::AfterName | Ext::Token | Ext::AfterValue, b'\r') => {
                self.extension_bytes = 0;
                return Ok(State::SizeLf { size });
            }
            (Ext::Name | Ext::AfterName | Ext::Token | Ext::AfterValue, b';') => Ext::BeforeName,
            (Ext::Name | Ext::AfterName, b'=') => Ext::BeforeValue,
            (Ext::BeforeValue, b'"') => Ext::Quoted,
            (Ext::BeforeName | Ext::Name, _) if is_tchar(byte) => Ext::Name,
            (Ext::BeforeValue | Ext::Token, _) if is_tchar(byte) => Ext::Token,
            (Ext::BeforeName | Ext::BeforeValue, _) if space => at,
            (Ext::Name | Ext::AfterName, _) if space => Ext::AfterName,
            (Ext::Token | Ext::AfterValue, _) if space => Ext::AfterValue,
            _ => return Err(Rule::MalformedChunkExtension),
        };
        self.extension(size, next)
    }

    fn trailer_byte(&mut self, byte: u8) -> Result<State, Rule> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > self.max_trailers {
            return Err(Rule::MalformedTrailer);
        }
        Ok(match (self.state, byte) {
            (State::TrailerStart, b'\r') => State::EndLf,
            (State::EndLf, b'\n') => State::Done,
            (State::TrailerStart | State::TrailerName, _) if is_tchar(byte) => State::TrailerName,
            (State::TrailerName, b':') => State::TrailerValue,
            (State::TrailerValue, b'\r') => State::TrailerLf,
            (State::TrailerValue, b'\t' | b' '..=b'~' | 0x80..=0xff) => State::TrailerValue,
            (State::TrailerLf, b'\n') => State::TrailerStart,
            _ => return Err(Rule::MalformedTrailer),
        })
    }
}

/// One byte while reading a chunk size.
fn size_byte(size: u64, digits: u8, byte: u8) -> Result<State, Rule> {
    if let Some(digit) = (byte as char).to_digit(16) {
        let size = size * 16 + u64::from(digit);
        if size > MAX_CHUNK_SIZE || digits >= MAX_SIZE_DIGITS {
            return Err(Rule::MalformedChunkSize);
        }
        return Ok(State::Size {
            size,
            digits: digits + 1,
        });
    }
    if digits == 0 {
        return Err(Rule::MalformedChunkSize);
    }
    match byte {
        b'\r' => Ok(State::SizeLf { size }),
        b' ' | b'\t' => Ok(State::SizeSpace { size }),
        b';' => Ok(State::Extension {
            size,
            at: Ext::BeforeName,
        }),
        _ => Err(Rule::MalformedChunkSize),
    }
}
