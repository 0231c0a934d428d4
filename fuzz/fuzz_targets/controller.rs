//! Arbitrary input sequences for the controller state machine; see `mq_fuzz::controller` for
//! what is fed and what is checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mq_fuzz::controller::run(data));
