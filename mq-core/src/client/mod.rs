//! Client state machines (producer and consumer), sans-IO like the broker node.
