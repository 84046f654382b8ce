//! A minimal WebSocket (RFC 6455) for the end-to-end tests, written here
//! rather than taken from a crate: the opening handshake with its
//! `Sec-WebSocket-Accept` proof, and single-frame messages (masked from the
//! client, unmasked from the server). Enough to check that the proxy
//! relays an upgraded connection both ways, byte for byte.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use super::backend::{RawBackend, read_head};

/// The GUID of RFC 6455, section 1.3.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Accept` value for a key.
pub fn accept_value(key: &str) -> String {
    base64(&sha1(format!("{key}{GUID}").as_bytes()))
}

/// Opcodes used here.
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;

/// Writes one final frame; `mask` is set by clients (RFC 6455, 5.3).
pub fn write_frame(
    writer: &mut impl Write,
    opcode: u8,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) -> std::io::Result<()> {
    let mut frame = vec![0x80 | opcode];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        length @ 0..=125 => frame.push(mask_bit | length as u8),
        length @ 126..=65535 => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(length as u16).to_be_bytes());
        }
        length => {
            frame.push(mask_bit | 127);
            frame.extend_from_slice(&(length as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            frame.extend_from_slice(&key);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => frame.extend_from_slice(payload),
    }
    writer.write_all(&frame)?;
    writer.flush()
}

/// Reads one frame: its opcode and unmasked payload.
pub fn read_frame(reader: &mut impl Read) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    reader.read_exact(&mut head)?;
    let opcode = head[0] & 0x0f;
    let masked = head[1] & 0x80 != 0;
    let length = match head[1] & 0x7f {
        126 => {
            let mut bytes = [0u8; 2];
            reader.read_exact(&mut bytes)?;
            u64::from(u16::from_be_bytes(bytes))
        }
        127 => {
            let mut bytes = [0u8; 8];
            reader.read_exact(&mut bytes)?;
            u64::from_be_bytes(bytes)
        }
        length => u64::from(length),
    };
    let mut key = [0u8; 4];
    if masked {
        reader.read_exact(&mut key)?;
    }
    let mut payload = vec![0u8; usize::try_from(length).unwrap()];
    reader.read_exact(&mut payload)?;
    if masked {
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= key[i % 4];
        }
    }
    Ok((opcode, payload))
}

/// A WebSocket echo server behind a plain TCP port: answers the opening
/// handshake, then sends every data frame back unmasked, and answers a
/// close frame with a close frame. Each handshake's request is recorded.
pub fn echo_backend(seen: std::sync::mpsc::Sender<super::backend::SeenRequest>) -> RawBackend {
    let seen = std::sync::Mutex::new(seen);
    RawBackend::start(move |stream: TcpStream| {
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        let Some(request) = read_head(&mut reader) else {
            return;
        };
        let key = request
            .header("sec-websocket-key")
            .unwrap_or_default()
            .to_owned();
        let upgrade = request
            .header("upgrade")
            .is_some_and(|value| value.eq_ignore_ascii_case("websocket"));
        let _ = seen.lock().unwrap().send(request);
        if !upgrade {
            let _ = writer.write_all(
                b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        }
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            accept_value(&key)
        );
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
        while let Ok((opcode, payload)) = read_frame(&mut reader) {
            if opcode == CLOSE {
                let _ = write_frame(&mut writer, CLOSE, &payload, None);
                return;
            }
            if write_frame(&mut writer, opcode, &payload, None).is_err() {
                return;
            }
        }
    })
}

/// Sends the opening handshake on `stream` and reads the answer's head;
/// returns the status and headers, and checks the accept proof on a 101.
pub fn open(
    reader: &mut BufReader<impl Read + Write>,
    host: &str,
    path: &str,
) -> std::io::Result<super::client::Answer> {
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    reader.get_mut().write_all(request.as_bytes())?;
    reader.get_mut().flush()?;
    let answer = super::tls::read_answer(reader)?;
    if answer.status == 101 {
        assert_eq!(
            answer.header("sec-websocket-accept"),
            Some(accept_value(key).as_str()),
            "the accept proof did not come through"
        );
    }
    Ok(answer)
}

/// Sends a masked message and reads the echoed one.
pub fn echo(
    reader: &mut BufReader<impl Read + Write>,
    opcode: u8,
    payload: &[u8],
) -> std::io::Result<(u8, Vec<u8>)> {
    write_frame(
        reader.get_mut(),
        opcode,
        payload,
        Some([0x12, 0x34, 0x56, 0x78]),
    )?;
    // Anything the reader buffered after the handshake comes first.
    read_frame(reader)
}

/// Whether `reader` ends (close, error) before more data comes.
pub fn at_end(reader: &mut impl BufRead) -> bool {
    matches!(reader.fill_buf(), Ok([]) | Err(_))
}

/// SHA-1 (FIPS 180-4), only for the handshake proof.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut message = data.to_vec();
    let bit_length = (data.len() as u64) * 8;
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bit_length.to_be_bytes());
    for block in message.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, word) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let next = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*word);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = next;
        }
        for (state, value) in h.iter_mut().zip([a, b, c, d, e]) {
            *state = state.wrapping_add(value);
        }
    }
    let mut digest = [0u8; 20];
    for (i, word) in h.iter().enumerate() {
        digest[i * 4..i * 4 + 4].copy_from_slice(&word.to_be_bytes());
    }
    digest
}

/// Standard base64 with padding.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let bytes = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let group = (u32::from(bytes[0]) << 16) | (u32::from(bytes[1]) << 8) | u32::from(bytes[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(group >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
