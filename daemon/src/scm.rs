//! Passing listening sockets between processes (SCM_RIGHTS) for upgrades.
//!
//! Each worker has, besides its command channel, a second unix socket used
//! only for this: a message carries the addresses as text and the sockets
//! as ancillary data, in the same order. Messages are rare and small, so
//! plain blocking calls on a dedicated socket are enough.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

/// Most sockets in one message.
pub const MAX_SOCKETS: usize = 256;

/// Sends `sockets` over the unix socket `channel`.
pub fn send_sockets(channel: &impl AsRawFd, sockets: &[(SocketAddr, OwnedFd)]) -> io::Result<()> {
    if sockets.len() > MAX_SOCKETS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "cannot pass {} sockets at once (at most {MAX_SOCKETS})",
                sockets.len()
            ),
        ));
    }
    let addresses: Vec<String> = sockets
        .iter()
        .map(|(address, _)| address.to_string())
        .collect();
    let text = addresses.join("\n");
    // An empty list still needs one byte for the message to exist.
    let payload = if text.is_empty() {
        b"\n".to_vec()
    } else {
        text.into_bytes()
    };
    let length = (payload.len() as u32).to_le_bytes();
    let fds: Vec<RawFd> = sockets.iter().map(|(_, fd)| fd.as_raw_fd()).collect();
    let iov = [IoSlice::new(&length), IoSlice::new(&payload)];
    let control = if fds.is_empty() {
        vec![]
    } else {
        vec![ControlMessage::ScmRights(&fds)]
    };
    sendmsg::<()>(channel.as_raw_fd(), &iov, &control, MsgFlags::empty(), None)
        .map_err(io::Error::from)?;
    Ok(())
}

/// Receives one message of sockets sent by [`send_sockets`].
pub fn receive_sockets(channel: &impl AsRawFd) -> io::Result<Vec<(SocketAddr, OwnedFd)>> {
    let mut buffer = vec![0u8; 4 + MAX_SOCKETS * 48];
    let mut control = nix::cmsg_space!([RawFd; MAX_SOCKETS]);
    let (received, fds) = {
        let mut iov = [IoSliceMut::new(&mut buffer)];
        let message = recvmsg::<()>(
            channel.as_raw_fd(),
            &mut iov,
            Some(&mut control),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        let mut fds = Vec::new();
        for control in message.cmsgs().map_err(io::Error::from)? {
            if let ControlMessageOwned::ScmRights(received) = control {
                // SAFETY: the kernel just installed these descriptors in this
                // process for us; nothing else owns them.
                fds.extend(
                    received
                        .into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        (message.bytes, fds)
    };
    if received < 4 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the socket channel closed",
        ));
    }
    let length = u32::from_le_bytes([buffer[0], buffer[1], buffer[2], buffer[3]]) as usize;
    let text = std::str::from_utf8(&buffer[4..(4 + length).min(received)])
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "socket addresses are not text"))?;
    let addresses: Vec<SocketAddr> = text
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            line.parse().map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidData, format!("bad address '{line}'"))
            })
        })
        .collect::<io::Result<_>>()?;
    if addresses.len() != fds.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} addresses for {} sockets", addresses.len(), fds.len()),
        ));
    }
    Ok(addresses.into_iter().zip(fds).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn sockets_cross_a_unix_socket_with_their_addresses() {
        let (left, right) = UnixStream::pair().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        send_sockets(&left, &[(address, OwnedFd::from(listener))]).unwrap();
        let received = receive_sockets(&right).unwrap();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].0, address);
        let listener = std::net::TcpListener::from(received.into_iter().next().unwrap().1);
        assert_eq!(listener.local_addr().unwrap(), address);
        send_sockets(&left, &[]).unwrap();
        assert!(receive_sockets(&right).unwrap().is_empty());
    }
}
