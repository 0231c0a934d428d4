//! Wraps arbitrary bytes in a frame header with the right length, version and CRC,
//! so every input reaches the message decoder behind the checksum (which
//! `decode_frame` makes the fuzzer work hard to pass).
//!
//! Properties: the decoder rejects the payload as malformed or decodes a message
//! that re-encodes and decodes to itself; nothing else (no panic, no other error).

#![no_main]

use libfuzzer_sys::fuzz_target;
use mq_core::wire::codec::{CodecError, FRAME_HEADER_BYTES, FRAME_VERSION};
use mq_core::wire::{decode_frame, encode_frame};

fuzz_target!(|payload: &[u8]| {
    let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    frame.extend_from_slice(&((payload.len() + FRAME_HEADER_BYTES - 4) as u32).to_be_bytes());
    frame.push(FRAME_VERSION);
    frame.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    frame.extend_from_slice(payload);
    match decode_frame(&frame, usize::MAX) {
        Ok(Some((msg, used))) => {
            assert_eq!(used, frame.len());
            let mut again = Vec::new();
            encode_frame(&msg, usize::MAX, &mut again).expect("a decoded message re-encodes");
            let (back, _) = decode_frame(&again, usize::MAX).expect("re-encoded frame decodes").expect("complete");
            assert_eq!(back, msg, "re-encoding changed the message");
        }
        Err(CodecError::Malformed(_)) => {}
        other => panic!("a frame with a valid header gave {other:?}"),
    }
});
