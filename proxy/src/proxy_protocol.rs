//! The PROXY protocol, version 2: the binary header a load balancer puts in
//! front of a TCP stream to say who the client really is.
//!
//! Only version 2 is spoken, as in Sōzu; a version 1 (text) header is
//! refused with its own error so that the operator sees what was sent.
//!
//! The wire format (HAProxy's `proxy-protocol.txt`, section 2.2):
//!
//! ```text
//! 12 bytes  signature      \r\n\r\n\0\r\nQUIT\n
//!  1 byte   version (high nibble, 2) and command (low nibble: 0 LOCAL, 1 PROXY)
//!  1 byte   address family (high nibble: 0 UNSPEC, 1 INET, 2 INET6, 3 UNIX)
//!           and transport (low nibble: 0 UNSPEC, 1 STREAM, 2 DGRAM)
//!  2 bytes  length of what follows, big endian
//!  n bytes  addresses (12 for INET, 36 for INET6, 216 for UNIX), then TLVs
//! ```
//!
//! This module is a codec on bytes only: it never touches a socket.
//! Decoding follows the same two steps as the command channel's framing:
//! [`header_len`] checks the 16 fixed bytes and bounds the total size before
//! anything is allocated, then [`parse`] decodes a header that is entirely
//! buffered. Reading a header off a connection (`proxy_protocol_io`) uses
//! both, plus [`check_signature`] to turn a client away at its first wrong
//! byte.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// The 12 bytes every version 2 header starts with.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Signature, version and command, family and transport, length.
pub const FIXED_LEN: usize = 16;

/// The largest header accepted, fixed part included.
///
/// The largest address block (two unix paths) takes 216 bytes; the rest is
/// room for TLVs (ALPN, authority, unique id, TLS details), which real
/// senders keep well under a kilobyte. The length field alone would allow
/// 64 KiB per connection before any payload: a header announcing more than
/// this is refused without reading it.
pub const MAX_HEADER_LEN: usize = 2048;

/// Address block sizes by family.
const INET_ADDRESSES_LEN: usize = 12;
const INET6_ADDRESSES_LEN: usize = 36;
const UNIX_PATH_LEN: usize = 108;
const UNIX_ADDRESSES_LEN: usize = 2 * UNIX_PATH_LEN;

/// The first bytes of a version 1 header.
const VERSION_1_PREFIX: &[u8] = b"PROXY ";

/// What the sender says the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// The sender opened this connection itself (a health check, say): the
    /// addresses, if any, mean nothing and the real endpoints apply.
    Local,
    /// The connection is relayed on behalf of the client in the addresses.
    Proxy,
}

/// The transport protocol of the client's original connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Not given (LOCAL, or an unknown protocol).
    Unspecified,
    /// A stream: TCP, or a unix stream socket.
    Stream,
    /// Datagrams: UDP, or a unix datagram socket.
    Datagram,
}

/// The client's original source and destination, as the sender saw them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addresses {
    /// No address: LOCAL, or a family the sender did not name.
    Unspecified,
    /// IPv4 source and destination.
    Ipv4 {
        /// The client.
        source: SocketAddrV4,
        /// Where the client connected to.
        destination: SocketAddrV4,
    },
    /// IPv6 source and destination.
    Ipv6 {
        /// The client.
        source: SocketAddrV6,
        /// Where the client connected to.
        destination: SocketAddrV6,
    },
    /// Unix socket paths, 108 bytes each, zero padded.
    Unix {
        /// The client's path.
        source: Box<[u8; UNIX_PATH_LEN]>,
        /// The path the client connected to.
        destination: Box<[u8; UNIX_PATH_LEN]>,
    },
}

impl Addresses {
    fn family_nibble(&self) -> u8 {
        match self {
            Addresses::Unspecified => 0x0,
            Addresses::Ipv4 { .. } => 0x1,
            Addresses::Ipv6 { .. } => 0x2,
            Addresses::Unix { .. } => 0x3,
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            Addresses::Unspecified => 0,
            Addresses::Ipv4 { .. } => INET_ADDRESSES_LEN,
            Addresses::Ipv6 { .. } => INET6_ADDRESSES_LEN,
            Addresses::Unix { .. } => UNIX_ADDRESSES_LEN,
        }
    }
}

/// One type-length-value entry after the addresses.
#[allow(dead_code, reason = "part of the codec; only its tests use it so far")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The type (`PP2_TYPE_ALPN` is 0x01, `PP2_TYPE_AUTHORITY` 0x02, …).
    pub kind: u8,
    /// The value.
    pub value: &'a [u8],
}

/// A decoded version 2 header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// LOCAL or PROXY.
    pub command: Command,
    /// The client's transport protocol.
    pub transport: Transport,
    /// The client's addresses; always [`Addresses::Unspecified`] for LOCAL,
    /// whose address block the specification says to discard.
    pub addresses: Addresses,
    /// The TLV area, as received; well formed (see [`Header::tlvs`]).
    pub tlvs: Vec<u8>,
}

/// Why bytes are not a version 2 header the proxy accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// More bytes are needed; not an error for a reader that can wait.
    #[error("truncated PROXY header: {needed} bytes needed, {available} available")]
    Truncated {
        /// Bytes the header (or its fixed part) takes.
        needed: usize,
        /// Bytes given.
        available: usize,
    },
    /// A text (version 1) header: only version 2 is accepted.
    #[error("PROXY protocol version 1 (text) header: only version 2 is accepted")]
    Version1,
    /// The first 12 bytes are not the version 2 signature.
    #[error("no PROXY protocol version 2 signature")]
    Signature,
    /// The version nibble is not 2.
    #[error("unsupported PROXY protocol version {0}")]
    Version(u8),
    /// The command nibble is neither LOCAL nor PROXY.
    #[error("unknown PROXY command {0:#x}")]
    Command(u8),
    /// The family nibble names no address family.
    #[error("unknown PROXY address family {0:#x}")]
    Family(u8),
    /// The transport nibble names no transport protocol.
    #[error("unknown PROXY transport protocol {0:#x}")]
    Transport(u8),
    /// The declared length is over [`MAX_HEADER_LEN`].
    #[error("PROXY header of {declared} bytes is over the limit of {limit}")]
    TooLarge {
        /// Total size the header declares.
        declared: usize,
        /// [`MAX_HEADER_LEN`].
        limit: usize,
    },
    /// The declared length cannot hold the family's addresses.
    #[error("PROXY address block of {declared} bytes is too short for its family ({needed})")]
    AddressesTooShort {
        /// Length declared.
        declared: usize,
        /// Length the family takes.
        needed: usize,
    },
    /// A TLV runs past the end of the header.
    #[error("malformed TLV at offset {offset} of the PROXY header's TLV area")]
    Tlv {
        /// Where the broken TLV starts, from the start of the TLV area.
        offset: usize,
    },
}

/// Checks the fixed part of a header and returns the whole header's length,
/// at most [`MAX_HEADER_LEN`]. Needs at least [`FIXED_LEN`] bytes; looks at
/// no more.
pub fn header_len(bytes: &[u8]) -> Result<usize, ParseError> {
    check_signature(bytes)?;
    if bytes.len() < FIXED_LEN {
        return Err(ParseError::Truncated {
            needed: FIXED_LEN,
            available: bytes.len(),
        });
    }
    let version = bytes[12] >> 4;
    if version != 2 {
        return Err(ParseError::Version(version));
    }
    let declared = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    let total = FIXED_LEN + declared;
    if total > MAX_HEADER_LEN {
        return Err(ParseError::TooLarge {
            declared: total,
            limit: MAX_HEADER_LEN,
        });
    }
    Ok(total)
}

/// Fails as soon as the bytes seen so far (any number, even fewer than the
/// signature) cannot start a version 2 header, so a client speaking
/// something else is turned away without waiting for 16 bytes it may never
/// send.
pub fn check_signature(bytes: &[u8]) -> Result<(), ParseError> {
    let seen = bytes.len().min(SIGNATURE.len());
    if bytes[..seen] == SIGNATURE[..seen] {
        return Ok(());
    }
    let text = bytes.len().min(VERSION_1_PREFIX.len());
    if bytes[..text] == VERSION_1_PREFIX[..text] {
        return Err(ParseError::Version1);
    }
    Err(ParseError::Signature)
}

/// Decodes the header at the start of `bytes`; returns it and its length.
/// Bytes after the header are left alone.
pub fn parse(bytes: &[u8]) -> Result<(Header, usize), ParseError> {
    let total = header_len(bytes)?;
    if bytes.len() < total {
        return Err(ParseError::Truncated {
            needed: total,
            available: bytes.len(),
        });
    }
    let command = match bytes[12] & 0x0f {
        0x0 => Command::Local,
        0x1 => Command::Proxy,
        other => return Err(ParseError::Command(other)),
    };
    let block = &bytes[FIXED_LEN..total];
    if command == Command::Local {
        // "The receiver must accept this connection as valid and must use
        // the real connection endpoints and discard the protocol block
        // including the family."
        let header = Header {
            command,
            transport: Transport::Unspecified,
            addresses: Addresses::Unspecified,
            tlvs: Vec::new(),
        };
        return Ok((header, total));
    }
    let family = bytes[13] >> 4;
    let transport = match bytes[13] & 0x0f {
        0x0 => Transport::Unspecified,
        0x1 => Transport::Stream,
        0x2 => Transport::Datagram,
        other => return Err(ParseError::Transport(other)),
    };
    let needed = match family {
        0x0 => 0,
        0x1 => INET_ADDRESSES_LEN,
        0x2 => INET6_ADDRESSES_LEN,
        0x3 => UNIX_ADDRESSES_LEN,
        other => return Err(ParseError::Family(other)),
    };
    if block.len() < needed {
        return Err(ParseError::AddressesTooShort {
            declared: block.len(),
            needed,
        });
    }
    let (addresses, tlvs) = block.split_at(needed);
    let addresses = match family {
        0x1 => Addresses::Ipv4 {
            source: SocketAddrV4::new(ipv4(&addresses[0..4]), port(&addresses[8..10])),
            destination: SocketAddrV4::new(ipv4(&addresses[4..8]), port(&addresses[10..12])),
        },
        0x2 => Addresses::Ipv6 {
            source: SocketAddrV6::new(ipv6(&addresses[0..16]), port(&addresses[32..34]), 0, 0),
            destination: SocketAddrV6::new(
                ipv6(&addresses[16..32]),
                port(&addresses[34..36]),
                0,
                0,
            ),
        },
        0x3 => Addresses::Unix {
            source: Box::new(unix_path(&addresses[..UNIX_PATH_LEN])),
            destination: Box::new(unix_path(&addresses[UNIX_PATH_LEN..])),
        },
        _ => Addresses::Unspecified,
    };
    check_tlvs(tlvs)?;
    let header = Header {
        command,
        transport,
        addresses,
        tlvs: tlvs.to_vec(),
    };
    Ok((header, total))
}

fn ipv4(bytes: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])
}

fn ipv6(bytes: &[u8]) -> Ipv6Addr {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(bytes);
    Ipv6Addr::from(octets)
}

fn port(bytes: &[u8]) -> u16 {
    u16::from_be_bytes([bytes[0], bytes[1]])
}

fn unix_path(bytes: &[u8]) -> [u8; UNIX_PATH_LEN] {
    let mut path = [0u8; UNIX_PATH_LEN];
    path.copy_from_slice(bytes);
    path
}

fn check_tlvs(mut area: &[u8]) -> Result<(), ParseError> {
    let total = area.len();
    while !area.is_empty() {
        let offset = total - area.len();
        if area.len() < 3 {
            return Err(ParseError::Tlv { offset });
        }
        let length = usize::from(u16::from_be_bytes([area[1], area[2]]));
        if area.len() < 3 + length {
            return Err(ParseError::Tlv { offset });
        }
        area = &area[3 + length..];
    }
    Ok(())
}

impl Header {
    /// A PROXY header for a TCP connection from `source` to `destination`.
    /// When one address is IPv4 and the other IPv6, the IPv4 one is written
    /// as an IPv4-mapped IPv6 address: the format has one family for both.
    pub fn tcp(source: SocketAddr, destination: SocketAddr) -> Header {
        let addresses = match (source, destination) {
            (SocketAddr::V4(source), SocketAddr::V4(destination)) => Addresses::Ipv4 {
                source,
                destination,
            },
            (source, destination) => Addresses::Ipv6 {
                source: mapped(source),
                destination: mapped(destination),
            },
        };
        Header {
            command: Command::Proxy,
            transport: Transport::Stream,
            addresses,
            tlvs: Vec::new(),
        }
    }

    /// A LOCAL header: no client behind this connection.
    #[allow(dead_code, reason = "part of the codec; only its tests use it so far")]
    pub fn local() -> Header {
        Header {
            command: Command::Local,
            transport: Transport::Unspecified,
            addresses: Addresses::Unspecified,
            tlvs: Vec::new(),
        }
    }

    /// The client's address, for a PROXY header over IPv4 or IPv6; `None`
    /// means "use the connection's real peer".
    pub fn source(&self) -> Option<SocketAddr> {
        if self.command != Command::Proxy {
            return None;
        }
        match &self.addresses {
            Addresses::Ipv4 { source, .. } => Some(SocketAddr::V4(*source)),
            Addresses::Ipv6 { source, .. } => Some(SocketAddr::V6(*source)),
            Addresses::Unspecified | Addresses::Unix { .. } => None,
        }
    }

    /// The TLV entries, in order.
    #[allow(dead_code, reason = "part of the codec; only its tests use it so far")]
    pub fn tlvs(&self) -> impl Iterator<Item = Tlv<'_>> {
        let mut area = self.tlvs.as_slice();
        std::iter::from_fn(move || {
            // A header built by hand may hold a broken area; it ends here.
            if area.len() < 3 {
                return None;
            }
            let length = usize::from(u16::from_be_bytes([area[1], area[2]]));
            let value = area.get(3..3 + length)?;
            let tlv = Tlv {
                kind: area[0],
                value,
            };
            area = &area[3 + length..];
            Some(tlv)
        })
    }

    /// The size of [`Header::encode`]'s output.
    #[allow(dead_code, reason = "part of the codec; only its tests use it so far")]
    pub fn encoded_len(&self) -> usize {
        FIXED_LEN + self.addresses.encoded_len() + self.tlvs.len()
    }

    /// The header's bytes. Fails when the TLVs make it longer than the
    /// 16-bit length field can say.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let block = self.addresses.encoded_len() + self.tlvs.len();
        let length = u16::try_from(block).map_err(|_| EncodeError::TooLong(block))?;
        let mut bytes = Vec::with_capacity(FIXED_LEN + block);
        bytes.extend_from_slice(&SIGNATURE);
        bytes.push(match self.command {
            Command::Local => 0x20,
            Command::Proxy => 0x21,
        });
        let transport = match self.transport {
            Transport::Unspecified => 0x0,
            Transport::Stream => 0x1,
            Transport::Datagram => 0x2,
        };
        bytes.push(self.addresses.family_nibble() << 4 | transport);
        bytes.extend_from_slice(&length.to_be_bytes());
        match &self.addresses {
            Addresses::Unspecified => {}
            Addresses::Ipv4 {
                source,
                destination,
            } => {
                bytes.extend_from_slice(&source.ip().octets());
                bytes.extend_from_slice(&destination.ip().octets());
                bytes.extend_from_slice(&source.port().to_be_bytes());
                bytes.extend_from_slice(&destination.port().to_be_bytes());
            }
            Addresses::Ipv6 {
                source,
                destination,
            } => {
                bytes.extend_from_slice(&source.ip().octets());
                bytes.extend_from_slice(&destination.ip().octets());
                bytes.extend_from_slice(&source.port().to_be_bytes());
                bytes.extend_from_slice(&destination.port().to_be_bytes());
            }
            Addresses::Unix {
                source,
                destination,
            } => {
                bytes.extend_from_slice(&source[..]);
                bytes.extend_from_slice(&destination[..]);
            }
        }
        bytes.extend_from_slice(&self.tlvs);
        Ok(bytes)
    }
}

fn mapped(address: SocketAddr) -> SocketAddrV6 {
    match address {
        SocketAddr::V4(v4) => SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0),
        SocketAddr::V6(v6) => SocketAddrV6::new(*v6.ip(), v6.port(), 0, 0),
    }
}

/// Why a header could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// Addresses and TLVs over 65535 bytes.
    #[error("PROXY header addresses and TLVs take {0} bytes, over 65535")]
    TooLong(usize),
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The 12 signature bytes, written out as the specification lists them.
    pub(crate) const SIG: [u8; 12] = [
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
    ];

    /// A PROXY header from 192.0.2.10:50000 to 198.51.100.1:443.
    pub(crate) fn v4_header() -> Vec<u8> {
        let mut bytes = SIG.to_vec();
        bytes.extend_from_slice(&[
            0x21, // version 2, PROXY
            0x11, // INET, STREAM
            0x00, 0x0C, // 12 bytes follow
            192, 0, 2, 10, // source 192.0.2.10
            198, 51, 100, 1, // destination 198.51.100.1
            0xC3, 0x50, // source port 50000
            0x01, 0xBB, // destination port 443
        ]);
        bytes
    }

    fn v6_header() -> Vec<u8> {
        let mut bytes = SIG.to_vec();
        bytes.extend_from_slice(&[0x21, 0x21, 0x00, 0x24]);
        // 2001:db8::1 then 2001:db8::2
        bytes.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        bytes.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        bytes.extend_from_slice(&[0x30, 0x39, 0x00, 0x50]); // 12345, 80
        bytes
    }

    #[test]
    fn an_ipv4_header_gives_the_client_address() {
        let bytes = v4_header();
        let (header, length) = parse(&bytes).unwrap();
        assert_eq!(length, 28);
        assert_eq!(header.command, Command::Proxy);
        assert_eq!(header.transport, Transport::Stream);
        assert_eq!(
            header.addresses,
            Addresses::Ipv4 {
                source: "192.0.2.10:50000".parse().unwrap(),
                destination: "198.51.100.1:443".parse().unwrap(),
            }
        );
        assert_eq!(header.source(), Some("192.0.2.10:50000".parse().unwrap()));
    }

    #[test]
    fn an_ipv6_header_gives_the_client_address() {
        let bytes = v6_header();
        let (header, length) = parse(&bytes).unwrap();
        assert_eq!(length, 52);
        assert_eq!(
            header.addresses,
            Addresses::Ipv6 {
                source: "[2001:db8::1]:12345".parse().unwrap(),
                destination: "[2001:db8::2]:80".parse().unwrap(),
            }
        );
        assert_eq!(
            header.source(),
            Some("[2001:db8::1]:12345".parse().unwrap())
        );
    }

    #[test]
    fn a_local_header_names_no_client_even_with_addresses() {
        let mut bytes = SIG.to_vec();
        bytes.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
        let (header, length) = parse(&bytes).unwrap();
        assert_eq!(length, 16);
        assert_eq!(header, Header::local());
        assert_eq!(header.source(), None);

        // A LOCAL header with an IPv4 block: the block is skipped, not used.
        let mut with_block = v4_header();
        with_block[12] = 0x20;
        let (header, length) = parse(&with_block).unwrap();
        assert_eq!(length, 28);
        assert_eq!(header.addresses, Addresses::Unspecified);
        assert_eq!(header.source(), None);
    }

    #[test]
    fn tlvs_after_the_addresses_are_kept_and_listed() {
        let mut bytes = v4_header();
        // ALPN "h2", then a NOOP of 3 bytes.
        let tlvs = [0x01, 0x00, 0x02, b'h', b'2', 0x04, 0x00, 0x03, 0, 0, 0];
        bytes[15] = 12 + tlvs.len() as u8;
        bytes.extend_from_slice(&tlvs);
        bytes.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let (header, length) = parse(&bytes).unwrap();
        assert_eq!(length, 28 + tlvs.len());
        assert_eq!(header.source(), Some("192.0.2.10:50000".parse().unwrap()));
        let listed: Vec<Tlv<'_>> = header.tlvs().collect();
        assert_eq!(
            listed,
            [
                Tlv {
                    kind: 0x01,
                    value: b"h2"
                },
                Tlv {
                    kind: 0x04,
                    value: &[0, 0, 0]
                }
            ]
        );
        assert_eq!(header.encode().unwrap(), bytes[..length]);
    }

    #[test]
    fn encoding_gives_exactly_the_specified_bytes() {
        let v4 = Header::tcp(
            "192.0.2.10:50000".parse().unwrap(),
            "198.51.100.1:443".parse().unwrap(),
        );
        assert_eq!(v4.encode().unwrap(), v4_header());
        assert_eq!(v4.encoded_len(), 28);
        let v6 = Header::tcp(
            "[2001:db8::1]:12345".parse().unwrap(),
            "[2001:db8::2]:80".parse().unwrap(),
        );
        assert_eq!(v6.encode().unwrap(), v6_header());
        let mut local = SIG.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
        assert_eq!(Header::local().encode().unwrap(), local);
    }

    #[test]
    fn mixed_families_are_encoded_as_mapped_ipv6() {
        let header = Header::tcp(
            "192.0.2.10:50000".parse().unwrap(),
            "[2001:db8::2]:80".parse().unwrap(),
        );
        let (decoded, _) = parse(&header.encode().unwrap()).unwrap();
        assert_eq!(
            decoded.source(),
            Some("[::ffff:192.0.2.10]:50000".parse().unwrap())
        );
    }

    #[test]
    fn every_truncation_is_reported_as_such() {
        let bytes = v4_header();
        for cut in 0..bytes.len() {
            match parse(&bytes[..cut]) {
                Err(ParseError::Truncated { needed, available }) => {
                    assert_eq!(available, cut);
                    assert_eq!(needed, if cut < FIXED_LEN { FIXED_LEN } else { 28 });
                }
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_oversized_header_is_refused_from_its_fixed_part() {
        let mut bytes = SIG.to_vec();
        bytes.extend_from_slice(&[0x21, 0x11, 0xFF, 0xFF]);
        assert_eq!(
            header_len(&bytes),
            Err(ParseError::TooLarge {
                declared: 16 + 65535,
                limit: MAX_HEADER_LEN
            })
        );
        let largest = u16::try_from(MAX_HEADER_LEN - FIXED_LEN).unwrap();
        bytes[14..16].copy_from_slice(&largest.to_be_bytes());
        assert_eq!(header_len(&bytes), Ok(MAX_HEADER_LEN));
    }

    #[test]
    fn wrong_signatures_and_versions_are_typed() {
        let mut bytes = v4_header();
        bytes[3] = b'X';
        assert_eq!(parse(&bytes), Err(ParseError::Signature));
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(ParseError::Signature));
        // Already known from the first differing byte.
        assert_eq!(parse(b"G"), Err(ParseError::Signature));
        assert_eq!(
            parse(b"PROXY TCP4 192.0.2.10 198.51.100.1 50000 443\r\n"),
            Err(ParseError::Version1)
        );
        let mut v1 = v4_header();
        v1[12] = 0x11;
        assert_eq!(parse(&v1), Err(ParseError::Version(1)));
        let mut v3 = v4_header();
        v3[12] = 0x31;
        assert_eq!(parse(&v3), Err(ParseError::Version(3)));
    }

    #[test]
    fn unknown_commands_families_and_transports_are_typed() {
        let mut command = v4_header();
        command[12] = 0x22;
        assert_eq!(parse(&command), Err(ParseError::Command(2)));
        let mut family = v4_header();
        family[13] = 0x41;
        assert_eq!(parse(&family), Err(ParseError::Family(4)));
        let mut transport = v4_header();
        transport[13] = 0x13;
        assert_eq!(parse(&transport), Err(ParseError::Transport(3)));
        let mut short = v4_header();
        short[15] = 11;
        short.pop();
        assert_eq!(
            parse(&short),
            Err(ParseError::AddressesTooShort {
                declared: 11,
                needed: 12
            })
        );
        let mut broken_tlv = v4_header();
        broken_tlv[15] = 12 + 4;
        broken_tlv.extend_from_slice(&[0x01, 0x00, 0x05, b'h']);
        assert_eq!(parse(&broken_tlv), Err(ParseError::Tlv { offset: 0 }));
    }

    #[test]
    fn unix_and_unspecified_families_give_no_client_address() {
        let mut unspec = SIG.to_vec();
        unspec.extend_from_slice(&[0x21, 0x00, 0x00, 0x00]);
        let (header, _) = parse(&unspec).unwrap();
        assert_eq!(header.addresses, Addresses::Unspecified);
        assert_eq!(header.source(), None);

        let mut unix = SIG.to_vec();
        unix.extend_from_slice(&[0x21, 0x31, 0x00, 216]);
        let mut paths = vec![0u8; 216];
        paths[..9].copy_from_slice(b"/tmp/sock");
        unix.extend_from_slice(&paths);
        let (header, length) = parse(&unix).unwrap();
        assert_eq!(length, 232);
        assert!(
            matches!(&header.addresses, Addresses::Unix { source, .. } if source.starts_with(b"/tmp/sock"))
        );
        assert_eq!(header.source(), None);
        assert_eq!(header.encode().unwrap(), unix);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse(&bytes);
            let _ = header_len(&bytes);
        }

        #[test]
        fn mutated_headers_never_panic_and_stay_in_bounds(
            base in prop_oneof![Just(v4_header()), Just(v6_header())],
            mutations in proptest::collection::vec((0usize..64, any::<u8>()), 1..8),
            extra in proptest::collection::vec(any::<u8>(), 0..64),
            cut in 0usize..128,
        ) {
            let mut bytes = base;
            bytes.extend_from_slice(&extra);
            for (position, value) in mutations {
                let position = position % bytes.len();
                bytes[position] = value;
            }
            bytes.truncate(cut.max(1));
            if let Ok((header, length)) = parse(&bytes) {
                prop_assert!(length <= bytes.len());
                prop_assert!(length <= MAX_HEADER_LEN);
                // A PROXY header decodes back to what was read.
                if header.command == Command::Proxy {
                    prop_assert_eq!(header.encode().unwrap(), bytes[..length].to_vec());
                }
            }
        }

        #[test]
        fn encoded_tcp_headers_parse_back(
            source in any::<SocketAddr>(),
            destination in any::<SocketAddr>(),
        ) {
            let header = Header::tcp(source, destination);
            let bytes = header.encode().unwrap();
            let (decoded, length) = parse(&bytes).unwrap();
            prop_assert_eq!(length, bytes.len());
            prop_assert_eq!(&decoded, &header);
        }
    }
}
