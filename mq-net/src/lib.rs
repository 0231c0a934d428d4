//! mq-net
