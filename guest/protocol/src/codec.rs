//! Framing: a u32 little-endian length, then a bincode-encoded body.
//!
//! This is the only module that knows the encoding, so it can change in one
//! place. The length is checked against [`MAX_FRAME_BYTES`] before any buffer
//! is allocated, and the decoder itself carries the same limit and rejects
//! trailing bytes, so a hostile peer can neither make us allocate nor smuggle
//! data after a message.

use std::io::{self, Read, Write};

use bincode::Options;
use serde::{de::DeserializeOwned, Serialize};

/// The largest frame body accepted or produced, in bytes.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// What can go wrong while reading or writing frames.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The underlying stream failed.
    #[error("guest channel i/o failed")]
    Io(#[source] io::Error),
    /// The stream ended before a whole frame arrived.
    #[error("guest channel closed in the middle of a frame ({read} of {expected} bytes read)")]
    Truncated {
        /// Bytes read before the end of the stream.
        read: usize,
        /// Bytes the frame announced.
        expected: usize,
    },
    /// The stream ended cleanly between frames.
    #[error("guest channel closed")]
    Closed,
    /// A frame announced a body larger than [`MAX_FRAME_BYTES`].
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A frame announced an empty body, which no message encodes to.
    #[error("empty frame")]
    EmptyFrame,
    /// The body did not decode as the expected message.
    #[error("malformed frame")]
    Decode(#[source] bincode::Error),
    /// A message could not be encoded (or encodes past the size limit).
    #[error("message cannot be encoded")]
    Encode(#[source] bincode::Error),
    /// The peer's hello did not carry the pyro magic.
    #[error("peer is not a pyro guest agent (bad magic)")]
    BadMagic,
    /// The peer speaks no protocol version we speak.
    #[error("no common protocol version (ours {ours_min}..={ours_max}, theirs {theirs_min}..={theirs_max}); reinstall pyro so host and guest agent match")]
    VersionMismatch {
        /// Our oldest version.
        ours_min: u32,
        /// Our newest version.
        ours_max: u32,
        /// Their oldest version.
        theirs_min: u32,
        /// Their newest version.
        theirs_max: u32,
    },
}

fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .with_limit(MAX_FRAME_BYTES as u64)
        .reject_trailing_bytes()
}

/// Encodes `message` as one whole frame: length prefix plus body.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, ProtocolError> {
    let body = options()
        .serialize(message)
        .map_err(ProtocolError::Encode)?;
    if body.len() > MAX_FRAME_BYTES {
        return Err(ProtocolError::FrameTooLarge {
            len: body.len(),
            max: MAX_FRAME_BYTES,
        });
    }
    let len = u32::try_from(body.len()).map_err(|_| ProtocolError::FrameTooLarge {
        len: body.len(),
        max: MAX_FRAME_BYTES,
    })?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Checks a frame's length prefix and returns the body length it announces.
pub fn body_len(header: [u8; 4]) -> Result<usize, ProtocolError> {
    let len = u32::from_le_bytes(header) as usize;
    if len == 0 {
        return Err(ProtocolError::EmptyFrame);
    }
    if len > MAX_FRAME_BYTES {
        return Err(ProtocolError::FrameTooLarge {
            len,
            max: MAX_FRAME_BYTES,
        });
    }
    Ok(len)
}

/// Decodes a frame body (without its length prefix).
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ProtocolError> {
    options().deserialize(body).map_err(ProtocolError::Decode)
}

/// Writes one frame to a blocking stream.
pub fn write_frame<W: Write, T: Serialize>(
    writer: &mut W,
    message: &T,
) -> Result<(), ProtocolError> {
    let frame = encode(message)?;
    writer.write_all(&frame).map_err(ProtocolError::Io)?;
    writer.flush().map_err(ProtocolError::Io)
}

/// Reads one frame from a blocking stream.
///
/// Returns [`ProtocolError::Closed`] when the stream ends before the first
/// byte of a frame, and [`ProtocolError::Truncated`] when it ends inside one.
pub fn read_frame<R: Read, T: DeserializeOwned>(reader: &mut R) -> Result<T, ProtocolError> {
    let mut header = [0u8; 4];
    let got = read_full(reader, &mut header)?;
    if got == 0 {
        return Err(ProtocolError::Closed);
    }
    if got < header.len() {
        return Err(ProtocolError::Truncated {
            read: got,
            expected: header.len(),
        });
    }
    let len = body_len(header)?;
    let mut body = vec![0u8; len];
    let got = read_full(reader, &mut body)?;
    if got < len {
        return Err(ProtocolError::Truncated {
            read: got,
            expected: len,
        });
    }
    decode(&body)
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> Result<usize, ProtocolError> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(ProtocolError::Io(err)),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{Request, Response};

    #[test]
    fn round_trips_a_message() {
        let frame = encode(&Request::Ping).unwrap();
        let mut cursor = io::Cursor::new(frame);
        let back: Request = read_frame(&mut cursor).unwrap();
        assert_eq!(back, Request::Ping);
    }

    #[test]
    fn oversized_length_is_refused_before_allocating() {
        let mut frame = ((MAX_FRAME_BYTES + 1) as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&[0u8; 16]);
        let err = read_frame::<_, Request>(&mut io::Cursor::new(frame)).unwrap_err();
        assert!(
            matches!(err, ProtocolError::FrameTooLarge { len, .. } if len == MAX_FRAME_BYTES + 1)
        );
    }

    #[test]
    fn huge_length_is_refused() {
        let frame = u32::MAX.to_le_bytes().to_vec();
        let err = read_frame::<_, Request>(&mut io::Cursor::new(frame)).unwrap_err();
        assert!(matches!(err, ProtocolError::FrameTooLarge { .. }));
    }

    #[test]
    fn truncated_header_and_body_are_reported() {
        let err = read_frame::<_, Request>(&mut io::Cursor::new(vec![1u8, 0])).unwrap_err();
        assert!(matches!(
            err,
            ProtocolError::Truncated {
                read: 2,
                expected: 4
            }
        ));

        let mut frame = encode(&Response::Pong {
            agent_version: "1.2.3".into(),
            uptime_ms: 7,
        })
        .unwrap();
        frame.truncate(frame.len() - 3);
        let err = read_frame::<_, Response>(&mut io::Cursor::new(frame)).unwrap_err();
        assert!(matches!(err, ProtocolError::Truncated { .. }));
    }

    #[test]
    fn clean_end_of_stream_is_closed() {
        let err = read_frame::<_, Request>(&mut io::Cursor::new(Vec::new())).unwrap_err();
        assert!(matches!(err, ProtocolError::Closed));
    }

    #[test]
    fn empty_frame_is_refused() {
        let err = read_frame::<_, Request>(&mut io::Cursor::new(vec![0u8; 4])).unwrap_err();
        assert!(matches!(err, ProtocolError::EmptyFrame));
    }

    #[test]
    fn unknown_variant_and_trailing_bytes_are_refused() {
        // Variant index 0xffff does not exist.
        let mut body = 0xffffu32.to_le_bytes().to_vec();
        let err = decode::<Request>(&body).unwrap_err();
        assert!(matches!(err, ProtocolError::Decode(_)));

        // A valid Ping followed by junk.
        body = encode(&Request::Ping).unwrap()[4..].to_vec();
        body.push(0xaa);
        let err = decode::<Request>(&body).unwrap_err();
        assert!(matches!(err, ProtocolError::Decode(_)));
    }

    #[test]
    fn inner_length_larger_than_frame_is_refused() {
        // An Output frame whose byte vector claims 2^40 bytes.
        let mut body = Vec::new();
        body.extend_from_slice(&2u32.to_le_bytes()); // Response::Output variant index
        body.extend_from_slice(&0u32.to_le_bytes()); // stream: stdout
        body.extend_from_slice(&(1u64 << 40).to_le_bytes()); // vec length
        let err = decode::<Response>(&body).unwrap_err();
        assert!(matches!(err, ProtocolError::Decode(_)));
    }

    #[test]
    fn encode_refuses_bodies_over_the_limit() {
        let err = encode(&Response::Output {
            stream: crate::messages::OutputStream::Stdout,
            data: vec![0u8; MAX_FRAME_BYTES + 1],
        })
        .unwrap_err();
        assert!(matches!(
            err,
            ProtocolError::Encode(_) | ProtocolError::FrameTooLarge { .. }
        ));
    }
}
