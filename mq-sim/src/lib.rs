//! mq-sim
