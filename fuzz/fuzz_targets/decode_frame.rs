//! Feeds arbitrary bytes to the frame decoder (docs/protocol.md, "Frames").
//!
//! Properties: decoding never panics and never allocates past the frame limit (a
//! small limit makes oversized claims cheap to hit); a decoded frame used exactly the
//! bytes its length field announces; and a decoded message re-encodes into a frame
//! that decodes to the same message.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mq_core::wire::{decode_frame, encode_frame};

/// Small, so that the "too large" path is hit often and a hostile length can never
/// make the decoder allocate much.
const MAX_FRAME_BYTES: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Ok(Some((msg, used))) = decode_frame(data, MAX_FRAME_BYTES) else { return };
    let declared = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
    assert_eq!(used, declared + 4, "a frame uses exactly its declared length");
    assert!(declared <= MAX_FRAME_BYTES, "a frame over the limit was accepted");

    let mut again = Vec::new();
    encode_frame(&msg, usize::MAX, &mut again).expect("a decoded message re-encodes");
    let (back, used_again) =
        decode_frame(&again, usize::MAX).expect("a re-encoded frame decodes").expect("a re-encoded frame is complete");
    assert_eq!(back, msg, "re-encoding changed the message");
    assert_eq!(used_again, again.len());
});
