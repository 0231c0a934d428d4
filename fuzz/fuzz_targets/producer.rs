//! Arbitrary input sequences for the producer state machine; see `mq_fuzz::producer` for
//! what is fed and what is checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mq_fuzz::producer::run(data));
