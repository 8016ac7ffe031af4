//! Framing: a 4-byte big-endian payload length, then one postcard-encoded message.
//!
//! [`split_frame`] and [`decode_frame`] are IO-free over a byte buffer ("need more bytes" is
//! `Ok(None)`, apart from malformed input); [`read_frame`] and [`write_frame`] are the thin
//! async drivers. Lengths are checked against [`MAX_FRAME_LEN`] before any allocation, and
//! error messages never contain payload bytes (a frame may carry a password).

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::MAX_FRAME_LEN;

/// Size of the length prefix in bytes.
pub const FRAME_HEADER_LEN: usize = 4;

/// Largest chunk reserved ahead of data actually arriving, so a peer that announces 1 MiB
/// and then stalls costs us no more than this.
const READ_RESERVE_CHUNK: usize = 64 * 1024;

/// A frame could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix (or a message being encoded) exceeds [`MAX_FRAME_LEN`].
    #[error(
        "frame of {len} bytes exceeds the {max}-byte limit: the peer is misbehaving or speaks another protocol"
    )]
    TooLarge {
        /// Announced (or encoded) payload length.
        len: usize,
        /// The limit, [`MAX_FRAME_LEN`].
        max: usize,
    },
    /// The stream ended inside a frame. Counts include the 4-byte prefix.
    #[error("stream ended inside a frame: expected {expected} bytes, got {got}")]
    Truncated {
        /// Bytes the whole frame needed (prefix included; 4 when the prefix itself was cut).
        expected: usize,
        /// Bytes of the frame that arrived.
        got: usize,
    },
    /// The payload is not a valid message of the expected type.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The underlying stream failed.
    #[error("stream error while moving a frame: {0}")]
    Io(#[from] std::io::Error),
}

fn check_length(len: usize) -> Result<(), FrameError> {
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    Ok(())
}

/// Encodes `msg` as one complete frame (prefix + payload).
pub fn encode_frame<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let buffer = postcard::to_extend(msg, vec![0u8; FRAME_HEADER_LEN])
        .map_err(|error| FrameError::Malformed(format!("cannot encode message: {error}")))?;
    let payload_len = buffer.len() - FRAME_HEADER_LEN;
    check_length(payload_len)?;
    let prefix = u32::try_from(payload_len)
        .map_err(|_| FrameError::TooLarge {
            len: payload_len,
            max: MAX_FRAME_LEN,
        })?
        .to_be_bytes();
    let mut buffer = buffer;
    buffer[..FRAME_HEADER_LEN].copy_from_slice(&prefix);
    Ok(buffer)
}

/// Finds the first whole frame in `buf` without decoding it.
///
/// Returns the payload and the number of bytes the frame occupies (prefix included), or
/// `Ok(None)` if `buf` does not yet hold a whole frame. An oversized prefix is refused as soon
/// as its 4 bytes are present.
pub fn split_frame(buf: &[u8]) -> Result<Option<(&[u8], usize)>, FrameError> {
    let Some(prefix) = buf.first_chunk::<FRAME_HEADER_LEN>() else {
        return Ok(None);
    };
    let payload_len = u32::from_be_bytes(*prefix) as usize;
    check_length(payload_len)?;
    let frame_len = FRAME_HEADER_LEN + payload_len;
    match buf.get(FRAME_HEADER_LEN..frame_len) {
        Some(payload) => Ok(Some((payload, frame_len))),
        None => Ok(None),
    }
}

/// Decodes one frame's payload as a `T`, refusing trailing bytes.
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    let (message, rest) = postcard::take_from_bytes::<T>(payload).map_err(|error| {
        FrameError::Malformed(format!(
            "cannot decode {}: {error}",
            short_type_name(std::any::type_name::<T>())
        ))
    })?;
    if !rest.is_empty() {
        return Err(FrameError::Malformed(format!(
            "{} trailing bytes after a {}",
            rest.len(),
            short_type_name(std::any::type_name::<T>())
        )));
    }
    Ok(message)
}

fn short_type_name(full: &str) -> &str {
    full.rsplit("::").next().unwrap_or(full)
}

/// Decodes the first whole frame in `buf`.
///
/// `Ok(None)`: more bytes are needed. `Ok(Some((message, consumed)))`: drop `consumed` bytes
/// from the front of the buffer before the next call.
pub fn decode_frame<T: DeserializeOwned>(buf: &[u8]) -> Result<Option<(T, usize)>, FrameError> {
    match split_frame(buf)? {
        None => Ok(None),
        Some((payload, consumed)) => Ok(Some((decode_payload(payload)?, consumed))),
    }
}

/// Writes `msg` as one frame and flushes.
pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
) -> Result<(), FrameError> {
    let frame = encode_frame(msg)?;
    w.write_all(&frame).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one frame's raw payload.
///
/// `Ok(None)` on a clean end of stream before the first byte of a frame; an end of stream
/// anywhere inside a frame is [`FrameError::Truncated`].
pub async fn read_frame_payload<R: AsyncRead + Unpin>(
    r: &mut R,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut prefix = [0u8; FRAME_HEADER_LEN];
    let mut prefix_filled = 0;
    while prefix_filled < FRAME_HEADER_LEN {
        let read = r.read(&mut prefix[prefix_filled..]).await?;
        if read == 0 {
            if prefix_filled == 0 {
                return Ok(None);
            }
            return Err(FrameError::Truncated {
                expected: FRAME_HEADER_LEN,
                got: prefix_filled,
            });
        }
        prefix_filled += read;
    }
    let payload_len = u32::from_be_bytes(prefix) as usize;
    check_length(payload_len)?;

    // Grow the buffer as data arrives rather than trusting the announced length up front.
    let mut payload = Vec::with_capacity(payload_len.min(READ_RESERVE_CHUNK));
    let mut limited = r.take(payload_len as u64);
    limited.read_to_end(&mut payload).await?;
    if payload.len() < payload_len {
        return Err(FrameError::Truncated {
            expected: FRAME_HEADER_LEN + payload_len,
            got: FRAME_HEADER_LEN + payload.len(),
        });
    }
    Ok(Some(payload))
}

/// Reads and decodes one frame.
///
/// `Ok(None)` on a clean end of stream before the first byte of a frame; an end of stream
/// anywhere inside a frame is [`FrameError::Truncated`].
pub async fn read_frame<R: AsyncRead + Unpin, T: DeserializeOwned>(
    r: &mut R,
) -> Result<Option<T>, FrameError> {
    match read_frame_payload(r).await? {
        None => Ok(None),
        Some(payload) => decode_payload(&payload).map(Some),
    }
}
