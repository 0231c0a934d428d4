//! Seeded randomness. mq's only PRNG is ChaCha (DESIGN.md section 2): one `u64` seed
//! is expanded into a key, and each consumer of randomness gets its own *named
//! stream* of that key (ChaCha's 64-bit stream id), so drawing more numbers in one
//! stream never moves another. A node derives its per-partition and per-session
//! streams the same way from the seed it was built with.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The random number generator every mq machine uses.
pub type Rng = ChaCha8Rng;

/// A root seed from which independent named streams are derived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Seed(pub u64);

impl Seed {
    /// The stream called `name` (for example `"network"` or `"disk"`).
    ///
    /// Stream ids are a stable 64-bit FNV-1a hash of the name, so adding a new stream
    /// elsewhere cannot shift this one.
    pub fn stream(self, name: &str) -> Rng {
        self.indexed_stream(name, 0)
    }

    /// The `index`-th stream of family `name` (for example one per node or partition).
    pub fn indexed_stream(self, name: &str, index: u64) -> Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.0);
        rng.set_stream(fnv1a(name.as_bytes()) ^ index.rotate_left(32));
        rng
    }

    /// A child seed for a sub-component, itself splittable into streams.
    pub fn child(self, name: &str, index: u64) -> Seed {
        use rand::RngCore;
        Seed(self.indexed_stream(name, index).next_u64())
    }
}

/// 64-bit FNV-1a: stable across platforms and Rust versions, unlike `DefaultHasher`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    #[test]
    fn streams_are_independent_of_each_other() {
        let seed = Seed(42);
        let mut a = seed.stream("network");
        let first: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        // Drawing from another stream does not change what "network" yields.
        let mut b = seed.stream("disk");
        for _ in 0..100 {
            b.next_u64();
        }
        let mut a2 = seed.stream("network");
        let again: Vec<u64> = (0..4).map(|_| a2.next_u64()).collect();
        assert_eq!(first, again);
        assert_ne!(first[0], seed.stream("disk").next_u64());
    }

    #[test]
    fn same_seed_same_numbers_different_seed_different_numbers() {
        assert_eq!(Seed(7).stream("x").next_u64(), Seed(7).stream("x").next_u64());
        assert_ne!(Seed(7).stream("x").next_u64(), Seed(8).stream("x").next_u64());
        assert_ne!(Seed(7).indexed_stream("x", 1).next_u64(), Seed(7).indexed_stream("x", 2).next_u64());
    }

    #[test]
    fn fnv_is_the_published_function() {
        // Test vectors from the FNV reference (draft-eastlake-fnv).
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
