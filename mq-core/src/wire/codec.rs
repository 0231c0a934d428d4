//! The binary codec (docs/protocol.md). A frame is
//!
//! ```text
//! +-------------+-----------+--------------+-----------------------------+
//! | length: u32 | version:u8| crc32c: u32  | payload: postcard(Message)  |
//! +-------------+-----------+--------------+-----------------------------+
//! ```
//!
//! all big-endian; `length` counts the bytes after itself, `crc32c` covers the
//! payload. Decoding arbitrary bytes returns an error and never panics; a length
//! above the frame limit is refused before anything is allocated, and postcard only
//! allocates for elements the payload really contains.
//!
//! Stored batches (partition logs on disk and in the simulator's disk model) use the
//! same shape without the version byte: `length | crc32c | postcard(RecordBatch)`, so
//! recovery can tell a torn or corrupt tail from good data.

use super::message::Message;
use super::record::RecordBatch;

/// The frame format version this build writes and reads.
pub const FRAME_VERSION: u8 = 1;
/// Bytes before a frame's payload: length, version, CRC.
pub const FRAME_HEADER_BYTES: usize = 9;
/// Bytes before a stored batch's payload: length, CRC.
pub const BATCH_HEADER_BYTES: usize = 8;
/// The default largest frame (length field value) accepted: 16 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Why bytes could not be decoded (or a message encoded).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The length prefix is above the limit; the peer is broken or hostile.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Declared length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The length prefix is too small to hold a header.
    #[error("frame length {len} is shorter than its header")]
    TooShort {
        /// Declared length.
        len: usize,
    },
    /// The version byte is not one this build speaks.
    #[error("unsupported frame version {version}; this broker speaks version {FRAME_VERSION}")]
    UnsupportedVersion {
        /// The version received.
        version: u8,
    },
    /// The checksum does not match the payload.
    #[error("checksum mismatch: header says {expected:#010x}, payload has {actual:#010x}")]
    Checksum {
        /// CRC in the header.
        expected: u32,
        /// CRC of the payload received.
        actual: u32,
    },
    /// The payload is not a valid message.
    #[error("malformed payload: {0}")]
    Malformed(String),
    /// Encoding failed (for example the message exceeds the frame limit).
    #[error("cannot encode: {0}")]
    Encode(String),
}

fn read_u32(buf: &[u8]) -> u32 {
    // Callers check the length first; this is an internal invariant.
    u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]])
}

/// Appends the frame for `msg` to `out`. Fails if the frame would exceed
/// `max_frame_bytes`.
pub fn encode_frame(msg: &Message, max_frame_bytes: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER_BYTES]);
    let mut payload = postcard::to_extend(msg, std::mem::take(out)).map_err(|e| CodecError::Encode(e.to_string()))?;
    let len = payload.len() - start - 4;
    if len > max_frame_bytes {
        payload.truncate(start);
        *out = payload;
        return Err(CodecError::Encode(format!("message of {len} bytes exceeds the frame limit of {max_frame_bytes}")));
    }
    let crc = crc32c::crc32c(&payload[start + FRAME_HEADER_BYTES..]);
    payload[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes());
    payload[start + 4] = FRAME_VERSION;
    payload[start + 5..start + 9].copy_from_slice(&crc.to_be_bytes());
    *out = payload;
    Ok(())
}

/// Encodes `msg` as one frame.
pub fn frame_bytes(msg: &Message) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    encode_frame(msg, DEFAULT_MAX_FRAME_BYTES, &mut out)?;
    Ok(out)
}

/// Decodes the first frame in `buf`. Returns `Ok(None)` when `buf` holds only part
/// of a frame (read more), or the message and the number of bytes it used.
pub fn decode_frame(buf: &[u8], max_frame_bytes: usize) -> Result<Option<(Message, usize)>, CodecError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = read_u32(buf) as usize;
    if len > max_frame_bytes {
        return Err(CodecError::TooLarge { len, max: max_frame_bytes });
    }
    if len < FRAME_HEADER_BYTES - 4 {
        return Err(CodecError::TooShort { len });
    }
    if buf.len() >= 5 && buf[4] != FRAME_VERSION {
        return Err(CodecError::UnsupportedVersion { version: buf[4] });
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    let expected = read_u32(&buf[5..]);
    let payload = &buf[FRAME_HEADER_BYTES..4 + len];
    let actual = crc32c::crc32c(payload);
    if expected != actual {
        return Err(CodecError::Checksum { expected, actual });
    }
    let msg = decode_exact::<Message>(payload)?;
    Ok(Some((msg, 4 + len)))
}

fn decode_exact<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, CodecError> {
    let (value, rest) = postcard::take_from_bytes::<T>(payload).map_err(|e| CodecError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CodecError::Malformed(format!("{} trailing bytes after the message", rest.len())));
    }
    Ok(value)
}

/// Appends the stored form of `batch` (length, CRC32C, payload) to `out`.
pub fn encode_stored_batch(batch: &RecordBatch, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; BATCH_HEADER_BYTES]);
    // Serializing an in-memory batch into a Vec cannot fail: postcard errors only on
    // a full fixed buffer or on types that refuse to serialize, neither of which we use.
    let mut buf = postcard::to_extend(batch, std::mem::take(out)).expect("postcard into a Vec is infallible");
    let len = buf.len() - start - 4;
    let crc = crc32c::crc32c(&buf[start + BATCH_HEADER_BYTES..]);
    buf[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
    *out = buf;
}

/// How a stored log ended when it was read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredTail {
    /// Every byte belonged to a valid batch.
    Clean,
    /// The last batch was cut short (a torn write); `bytes` were dropped.
    Torn {
        /// Bytes after the last valid batch.
        bytes: usize,
    },
    /// A batch failed its checksum or did not decode; it and everything after it
    /// (`bytes`) were dropped.
    Corrupt {
        /// Bytes from the first bad batch on.
        bytes: usize,
        /// What was wrong.
        reason: String,
    },
}

/// Stored batches read back from bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRead {
    /// The valid batches, in order.
    pub batches: Vec<RecordBatch>,
    /// The byte position of each valid batch.
    pub positions: Vec<usize>,
    /// The length of the valid prefix.
    pub valid_len: usize,
    /// How the bytes after the valid prefix looked.
    pub tail: StoredTail,
}

/// Reads back stored batches from `buf`, stopping at the first torn or corrupt one.
pub fn decode_stored_batches(buf: &[u8]) -> StoredRead {
    let mut batches = Vec::new();
    let mut positions = Vec::new();
    let mut pos = 0;
    let done = |batches, positions, pos, tail| StoredRead { batches, positions, valid_len: pos, tail };
    while pos < buf.len() {
        let rest = &buf[pos..];
        if rest.len() < BATCH_HEADER_BYTES {
            return done(batches, positions, pos, StoredTail::Torn { bytes: rest.len() });
        }
        let len = read_u32(rest) as usize;
        if len < BATCH_HEADER_BYTES - 4 {
            let reason = format!("batch length {len} too short");
            return done(batches, positions, pos, StoredTail::Corrupt { bytes: rest.len(), reason });
        }
        if rest.len() < 4 + len {
            return done(batches, positions, pos, StoredTail::Torn { bytes: rest.len() });
        }
        let expected = read_u32(&rest[4..]);
        let payload = &rest[BATCH_HEADER_BYTES..4 + len];
        let actual = crc32c::crc32c(payload);
        if expected != actual {
            let reason = format!("checksum {actual:#010x} != {expected:#010x}");
            return done(batches, positions, pos, StoredTail::Corrupt { bytes: rest.len(), reason });
        }
        match decode_exact::<RecordBatch>(payload) {
            Ok(b) => {
                batches.push(b);
                positions.push(pos);
            }
            Err(e) => {
                return done(batches, positions, pos, StoredTail::Corrupt { bytes: rest.len(), reason: e.to_string() })
            }
        }
        pos += 4 + len;
    }
    done(batches, positions, pos, StoredTail::Clean)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{CorrelationId, Offset, PartitionId};
    use crate::wire::{Acks, Record, Request, RequestBody};

    fn sample() -> Message {
        Message::Request(Request {
            correlation: CorrelationId(7),
            body: RequestBody::Produce {
                topic: "orders".into(),
                partition: PartitionId(3),
                acks: Acks::All,
                batch: RecordBatch::new(vec![Record::keyed("k", "v")]),
            },
        })
    }

    #[test]
    fn frame_round_trips_and_reports_its_length() {
        let bytes = frame_bytes(&sample()).unwrap();
        let (msg, used) = decode_frame(&bytes, DEFAULT_MAX_FRAME_BYTES).unwrap().unwrap();
        assert_eq!(msg, sample());
        assert_eq!(used, bytes.len());
    }

    #[test]
    fn partial_frames_ask_for_more_bytes() {
        let bytes = frame_bytes(&sample()).unwrap();
        for cut in 0..bytes.len() {
            assert_eq!(decode_frame(&bytes[..cut], DEFAULT_MAX_FRAME_BYTES), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn oversized_length_is_refused_before_reading_the_payload() {
        let mut bytes = frame_bytes(&sample()).unwrap();
        bytes[..4].copy_from_slice(&(u32::MAX).to_be_bytes());
        assert!(matches!(decode_frame(&bytes, 1024), Err(CodecError::TooLarge { .. })));
    }

    #[test]
    fn flipped_payload_bit_fails_the_checksum() {
        let mut bytes = frame_bytes(&sample()).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        assert!(matches!(decode_frame(&bytes, DEFAULT_MAX_FRAME_BYTES), Err(CodecError::Checksum { .. })));
    }

    #[test]
    fn unknown_version_is_refused() {
        let mut bytes = frame_bytes(&sample()).unwrap();
        bytes[4] = 99;
        assert_eq!(decode_frame(&bytes, DEFAULT_MAX_FRAME_BYTES), Err(CodecError::UnsupportedVersion { version: 99 }));
    }

    #[test]
    fn encoding_over_the_limit_fails_and_leaves_the_buffer_as_it_was() {
        let mut out = vec![1, 2, 3];
        assert!(encode_frame(&sample(), 4, &mut out).is_err());
        assert_eq!(out, vec![1, 2, 3]);
    }

    #[test]
    fn stored_batches_stop_at_a_torn_tail() {
        let mut buf = Vec::new();
        for i in 0..3u64 {
            let mut b = RecordBatch::new(vec![Record::from_value(format!("v{i}"))]);
            b.base_offset = Offset(i);
            encode_stored_batch(&b, &mut buf);
        }
        let full = buf.len();
        let all = decode_stored_batches(&buf);
        assert_eq!((all.batches.len(), all.valid_len, all.tail), (3, full, StoredTail::Clean));
        assert_eq!(all.positions[0], 0);
        let two = decode_stored_batches(&buf[..full - 3]);
        assert_eq!(two.batches.len(), 2);
        assert!(matches!(two.tail, StoredTail::Torn { .. }));
        buf[two.valid_len + 10] ^= 0xff;
        let two_again = decode_stored_batches(&buf);
        assert_eq!(two_again.batches.len(), 2);
        assert!(matches!(two_again.tail, StoredTail::Corrupt { .. }));
    }
}
