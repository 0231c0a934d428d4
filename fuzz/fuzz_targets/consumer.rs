//! Arbitrary input sequences for the consumer state machine; see `mq_fuzz::consumer` for
//! what is fed and what is checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mq_fuzz::consumer::run(data));
