//! Length-prefixed frames on a byte stream.
//!
//! A frame is a 4-byte big-endian unsigned length `n` followed by `n` bytes
//! of protobuf. A stream carries zero or more frames and ends cleanly only at
//! a frame boundary. The reader checks `n` against a limit before it
//! allocates anything, so an oversized or hostile prefix costs nothing.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use synod_wire::limits;

use crate::error::FrameError;

/// Bytes of the length prefix.
pub const PREFIX_BYTES: usize = 4;

/// Largest peer frame (one encoded envelope): 64 MiB, room for an `Accept` carrying the
/// leader's eight in-flight slots each holding one request of the state machine's largest size
/// (5 MiB, `synod_wire::limits::MAX_REQUEST_BYTES`).
pub const MAX_PEER_FRAME_BYTES: u32 = 64 * 1024 * 1024;

/// Largest client request frame: [`synod_wire::limits::MAX_REQUEST_FRAME_BYTES`].
pub const MAX_CLIENT_REQUEST_BYTES: u32 = limits::MAX_REQUEST_FRAME_BYTES as u32;

/// Largest client response frame: [`synod_wire::limits::MAX_RESPONSE_FRAME_BYTES`].
pub const MAX_CLIENT_RESPONSE_BYTES: u32 = limits::MAX_RESPONSE_FRAME_BYTES as u32;

/// Appends one frame holding `payload` to `out`.
///
/// Fails, leaving `out` unchanged, if `payload` is longer than `max_bytes`.
pub fn encode_frame_into(
    payload: &[u8],
    max_bytes: u32,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let size_bytes = payload.len() as u64;
    if size_bytes > u64::from(max_bytes) {
        return Err(FrameError::TooLarge {
            size_bytes,
            max_bytes,
        });
    }
    out.reserve(PREFIX_BYTES + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Writes one frame holding `payload`. Does not flush or finish the stream.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    payload: &[u8],
    max_bytes: u32,
) -> Result<(), FrameError> {
    let mut buf = Vec::new();
    encode_frame_into(payload, max_bytes, &mut buf)?;
    writer.write_all(&buf).await?;
    Ok(())
}

/// Reads the next frame.
///
/// Returns `Ok(None)` when the stream ends cleanly between frames,
/// [`FrameError::TooLarge`] as soon as a prefix announces more than
/// `max_bytes` (without reading the body), and [`FrameError::Truncated`]
/// when the stream ends inside a frame. Memory grows with the bytes
/// received, not with the announced length.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_bytes: u32,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut prefix = [0u8; PREFIX_BYTES];
    let mut filled = 0;
    while filled < PREFIX_BYTES {
        let n = reader.read(&mut prefix[filled..]).await?;
        if n == 0 {
            return if filled == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated)
            };
        }
        filled += n;
    }
    let size = u32::from_be_bytes(prefix);
    if size > max_bytes {
        return Err(FrameError::TooLarge {
            size_bytes: u64::from(size),
            max_bytes,
        });
    }
    // Grow with the bytes that actually arrive rather than trusting the
    // prefix: many streams announcing large frames cost only what they send.
    let mut body = Vec::with_capacity(size.min(INITIAL_BODY_CAPACITY_BYTES) as usize);
    let read = reader.take(u64::from(size)).read_to_end(&mut body).await?;
    if read < size as usize {
        return Err(FrameError::Truncated);
    }
    Ok(Some(body))
}

/// Most bytes reserved for a frame body before any of it arrived.
const INITIAL_BODY_CAPACITY_BYTES: u32 = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_end_cleanly() {
        let mut buf = Vec::new();
        encode_frame_into(b"one", 16, &mut buf).unwrap();
        encode_frame_into(b"", 16, &mut buf).unwrap();
        let mut reader = &buf[..];
        assert_eq!(
            read_frame(&mut reader, 16).await.unwrap(),
            Some(b"one".to_vec())
        );
        assert_eq!(read_frame(&mut reader, 16).await.unwrap(), Some(vec![]));
        assert_eq!(read_frame(&mut reader, 16).await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_oversized_prefix_is_refused_before_reading_the_body() {
        let mut reader = &u32::MAX.to_be_bytes()[..];
        let err = read_frame(&mut reader, 16).await.unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { size_bytes, .. } if size_bytes == u64::from(u32::MAX))
        );
    }

    #[tokio::test]
    async fn a_stream_ending_inside_a_frame_is_truncated() {
        for bytes in [&[0u8, 0][..], &[0, 0, 0, 5, b'a'][..]] {
            let mut reader = bytes;
            let err = read_frame(&mut reader, 16).await.unwrap_err();
            assert!(matches!(err, FrameError::Truncated), "{err:?}");
        }
    }

    #[test]
    fn encoding_an_oversized_payload_fails() {
        let mut buf = Vec::new();
        assert!(encode_frame_into(&[0; 17], 16, &mut buf).is_err());
        assert!(buf.is_empty());
    }
}
