//! Producer-side partitioners: which partition of a topic a record goes to
//! (DESIGN.md section 6, the brief's load balancing on the producer side;
//! docs/protocol.md section 7).
//!
//! The rule, applied by [`choose_partition`]:
//! 1. a topic with no partitions is an error ([`PartitionError::NoPartitions`]);
//! 2. a partition the caller names explicitly always wins over the partitioner; one
//!    the topic does not have is an error ([`PartitionError::UnknownPartition`]),
//!    never a panic and never silently re-routed;
//! 3. otherwise the producer's [`Partitioner`] picks, and a pick outside the topic
//!    (a bug in a plugged partitioner) is an error too.
//!
//! The built-in partitioners, chosen by [`PartitionerKind`]:
//! - [`Explicit`]: every send must name its partition;
//! - [`KeyHash`] (the default): Kafka's key hash, `(murmur2(key) & 0x7fffffff) % n`
//!   (see [`murmur2`]), so a key lands on the partition Kafka's Java client would
//!   pick, in every mq client and version; records without a key go round robin, as
//!   Kafka's default partitioner did before KIP-480 made it sticky;
//! - [`RoundRobin`]: a counter per topic, starting at partition 0;
//! - [`WeightedRoundRobin`]: smooth weighted round robin over the partitions (the
//!   one `shared` groups use, [`crate::group::shared`]);
//! - [`Random`]: uniform draws from a seeded stream, so the simulator replays them.
//!
//! Only [`KeyHash`] reads the key; the others ignore it, so under them equal keys do
//! not share a partition. Anything else plugs in through the [`Partitioner`] trait.

use crate::group::shared::WeightedRoundRobin as SmoothWeighted;
use crate::ids::{MemberId, PartitionId};
use crate::rng::{Rng, Seed};
use rand::Rng as _;
use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;

/// Most topics whose round-robin position a partitioner remembers. Past it the
/// least-named topic (in byte order) is forgotten and its cycle restarts at
/// partition 0: harmless for balance, and it keeps the map bounded (STYLE.md item 7).
pub const MAX_TRACKED_TOPICS: usize = 1024;

/// The name of the seeded stream [`PartitionerKind::build`] gives [`Random`].
pub const RANDOM_STREAM: &str = "partitioner";

/// Picks a partition for a record the caller did not address explicitly.
///
/// Implementations must return a partition below `partitions`; [`choose_partition`]
/// reports any other pick as [`PartitionError::PartitionerOutOfRange`]. They must
/// not read a clock or an unseeded random source (DESIGN.md section 2). `Debug` is
/// required so the producer holding one stays printable.
pub trait Partitioner: Send + fmt::Debug {
    /// The partition of `topic` (which has `partitions` partitions) for a record
    /// with `key`.
    fn partition(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        partitions: NonZeroU32,
    ) -> Result<PartitionId, PartitionError>;
}

/// Why no partition could be chosen for a record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PartitionError {
    /// The topic's metadata lists no partition.
    #[error("topic {topic} has no partitions; refresh metadata or create the topic")]
    NoPartitions {
        /// The topic.
        topic: String,
    },
    /// The caller named a partition the topic does not have.
    #[error("{topic}/{partition} does not exist; the topic has partitions 0..{partitions}")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: PartitionId,
        /// How many partitions the topic has.
        partitions: u32,
    },
    /// The partitioner is [`Explicit`] and the send named no partition.
    #[error("a send to {topic} must name its partition (the partitioner is Explicit)")]
    PartitionRequired {
        /// The topic.
        topic: String,
    },
    /// No partition of the topic has a positive weight ([`WeightedRoundRobin`]).
    #[error("no partition of {topic} (0..{partitions}) has a positive weight; weigh one of them")]
    NoWeightedPartition {
        /// The topic.
        topic: String,
        /// How many partitions the topic has.
        partitions: u32,
    },
    /// A plugged partitioner picked a partition the topic does not have.
    #[error("the partitioner picked {topic}/{partition} but the topic has partitions 0..{partitions}")]
    PartitionerOutOfRange {
        /// The topic.
        topic: String,
        /// The partition picked.
        partition: PartitionId,
        /// How many partitions the topic has.
        partitions: u32,
    },
}

/// Why a partitioner could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PartitionerConfigError {
    /// Weighted round robin got no positive weight (an empty list or all zeros).
    #[error("weighted round robin needs at least one positive weight")]
    NoPositiveWeight,
}

/// The partition of `topic` for one record: `explicit` if given (and the topic has
/// it), else `partitioner`'s pick; see the module docs for the rule. `partitions`
/// is the count the producer's metadata holds for `topic`.
pub fn choose_partition<P: Partitioner + ?Sized>(
    partitioner: &mut P,
    topic: &str,
    explicit: Option<PartitionId>,
    key: Option<&[u8]>,
    partitions: u32,
) -> Result<PartitionId, PartitionError> {
    let Some(n) = NonZeroU32::new(partitions) else {
        return Err(PartitionError::NoPartitions { topic: topic.to_owned() });
    };
    if let Some(partition) = explicit {
        return if partition.get() < partitions {
            Ok(partition)
        } else {
            Err(PartitionError::UnknownPartition { topic: topic.to_owned(), partition, partitions })
        };
    }
    let partition = partitioner.partition(topic, key, n)?;
    if partition.get() < partitions {
        Ok(partition)
    } else {
        Err(PartitionError::PartitionerOutOfRange { topic: topic.to_owned(), partition, partitions })
    }
}

/// Which built-in partitioner a producer uses; [`PartitionerKind::build`] makes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PartitionerKind {
    /// Every send names its partition ([`Explicit`]).
    Explicit,
    /// Kafka's murmur2 key hash; keyless records round robin ([`KeyHash`]).
    #[default]
    KeyHash,
    /// A counter per topic ([`RoundRobin`]).
    RoundRobin,
    /// Smooth weighted round robin; `weights[p]` is partition `p`'s weight
    /// ([`WeightedRoundRobin`]).
    WeightedRoundRobin {
        /// Weight per partition index; missing entries weigh 0.
        weights: Vec<u32>,
    },
    /// Uniform draws from the [`RANDOM_STREAM`] stream of the producer's seed
    /// ([`Random`]).
    Random,
}

impl PartitionerKind {
    /// Builds the partitioner; `seed` is the producer's, and only [`Random`] draws
    /// from it (its own named stream, so the producer's other streams do not move).
    pub fn build(&self, seed: Seed) -> Result<Box<dyn Partitioner>, PartitionerConfigError> {
        Ok(match self {
            PartitionerKind::Explicit => Box::new(Explicit),
            PartitionerKind::KeyHash => Box::new(KeyHash::default()),
            PartitionerKind::RoundRobin => Box::new(RoundRobin::default()),
            PartitionerKind::WeightedRoundRobin { weights } => Box::new(WeightedRoundRobin::new(weights.clone())?),
            PartitionerKind::Random => Box::new(Random::new(seed.stream(RANDOM_STREAM))),
        })
    }
}

// ----- the key hash -----

/// Kafka's 32-bit murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), the hash
/// behind [`KeyHash`]. It is part of the protocol: changing it moves keys between
/// partitions, so it is pinned by test vectors from Kafka's own tests.
///
/// With wrapping 32-bit unsigned arithmetic, `m = 0x5bd1e995` and `r = 24`:
/// 1. `h = 0x9747b28c ^ len` (the seed, xor the key length in bytes);
/// 2. for each whole 4-byte chunk, read as a little-endian `k`:
///    `k *= m; k ^= k >> r; k *= m; h *= m; h ^= k`;
/// 3. for the 1 to 3 trailing bytes `t[0..]`: `h ^= t[2] << 16` (if present),
///    `h ^= t[1] << 8` (if present), `h ^= t[0]; h *= m`;
/// 4. `h ^= h >> 13; h *= m; h ^= h >> 15`.
///
/// Kafka's Java code returns the same bits as a signed `int`.
pub fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    const SEED: u32 = 0x9747_b28c;
    // Kafka mixes in the length as a Java int; keys longer than 4 GiB cannot occur
    // (frames are far smaller), and truncating keeps the same bits Java would have.
    let mut h = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if let Some(&b) = tail.get(2) {
        h ^= u32::from(b) << 16;
    }
    if let Some(&b) = tail.get(1) {
        h ^= u32::from(b) << 8;
    }
    if let Some(&b) = tail.first() {
        h ^= u32::from(b);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The partition of `key` among `partitions`: `(murmur2(key) & 0x7fffffff) %
/// partitions`, Kafka's `toPositive(murmur2(key)) % numPartitions`.
pub fn key_partition(key: &[u8], partitions: NonZeroU32) -> PartitionId {
    PartitionId((murmur2(key) & 0x7fff_ffff) % partitions.get())
}

// ----- the partitioners -----

/// Refuses every record that names no partition: the application partitions itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Explicit;

impl Partitioner for Explicit {
    fn partition(&mut self, topic: &str, _key: Option<&[u8]>, _n: NonZeroU32) -> Result<PartitionId, PartitionError> {
        Err(PartitionError::PartitionRequired { topic: topic.to_owned() })
    }
}

/// Keyed records go to [`key_partition`]; keyless ones round robin per topic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyHash {
    keyless: RoundRobin,
}

impl Partitioner for KeyHash {
    fn partition(&mut self, topic: &str, key: Option<&[u8]>, n: NonZeroU32) -> Result<PartitionId, PartitionError> {
        match key {
            Some(key) => Ok(key_partition(key, n)),
            None => self.keyless.partition(topic, None, n),
        }
    }
}

/// Cycles `0, 1, .., n-1, 0, ..` per topic. If a topic gains partitions the cycle
/// widens from where it stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoundRobin {
    /// Records partitioned so far, per topic (bounded by [`MAX_TRACKED_TOPICS`]).
    counters: BTreeMap<String, u64>,
}

impl Partitioner for RoundRobin {
    fn partition(&mut self, topic: &str, _key: Option<&[u8]>, n: NonZeroU32) -> Result<PartitionId, PartitionError> {
        let counter = topic_state(&mut self.counters, topic, || 0);
        // A u64 counter never wraps in practice, so the cycle never jumps.
        let partition = *counter % u64::from(n.get());
        *counter += 1;
        // The remainder is below `n`, a u32, so it fits.
        Ok(PartitionId(partition as u32))
    }
}

/// Smooth weighted round robin over the partitions, per topic: over every run of
/// `W` picks (`W` the sum of the weights of the topic's partitions) partition `p`
/// gets exactly `weights[p]` records, interleaved rather than in bursts.
///
/// A partition weighted 0 gets nothing. Partitions past the end of `weights` weigh
/// 0 too: a topic that grows does not send load where nobody asked for it. Weights
/// of partitions the topic does not have are ignored; if none of the topic's
/// partitions has a positive weight the pick is
/// [`PartitionError::NoWeightedPartition`]. One weight list applies to every topic;
/// per-topic weights plug in through [`Partitioner`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightedRoundRobin {
    weights: Vec<u32>,
    /// Each topic's credits (bounded by [`MAX_TRACKED_TOPICS`]).
    topics: BTreeMap<String, SmoothWeighted>,
}

impl WeightedRoundRobin {
    /// A partitioner with `weights[p]` for partition `p`; at least one must be
    /// positive.
    pub fn new(weights: Vec<u32>) -> Result<Self, PartitionerConfigError> {
        if weights.iter().all(|w| *w == 0) {
            return Err(PartitionerConfigError::NoPositiveWeight);
        }
        Ok(WeightedRoundRobin { weights, topics: BTreeMap::new() })
    }

    /// The weight of each partition index.
    pub fn weights(&self) -> &[u32] {
        &self.weights
    }
}

impl Partitioner for WeightedRoundRobin {
    fn partition(&mut self, topic: &str, _key: Option<&[u8]>, n: NonZeroU32) -> Result<PartitionId, PartitionError> {
        let weights = &self.weights;
        let smooth = topic_state(&mut self.topics, topic, || {
            let mut smooth = SmoothWeighted::default();
            // The shared-group balancer counts a weight of 0 as 1, so zero-weight
            // partitions are never added: they must get nothing.
            for (p, w) in weights.iter().enumerate().filter(|(_, w)| **w > 0) {
                smooth.set(MemberId(p as u64), *w);
            }
            smooth
        });
        let limit = u64::from(n.get());
        match smooth.next(|m| m.get() < limit) {
            // Only partitions below `n`, a u32, are eligible, so the id fits.
            Some(m) => Ok(PartitionId(m.get() as u32)),
            None => Err(PartitionError::NoWeightedPartition { topic: topic.to_owned(), partitions: n.get() }),
        }
    }
}

/// A uniformly random partition per record, drawn from a seeded stream so a run
/// replays exactly under the same seed.
#[derive(Clone, Debug)]
pub struct Random {
    rng: Rng,
}

impl Random {
    /// Draws from `rng` (for example `Seed(s).stream(RANDOM_STREAM)`).
    pub fn new(rng: Rng) -> Self {
        Random { rng }
    }
}

impl Partitioner for Random {
    fn partition(&mut self, _topic: &str, _key: Option<&[u8]>, n: NonZeroU32) -> Result<PartitionId, PartitionError> {
        Ok(PartitionId(self.rng.random_range(0..n.get())))
    }
}

/// The state of `topic` in `map`, made by `init` if new; forgets the first topic
/// when the map is full.
fn topic_state<'a, T>(map: &'a mut BTreeMap<String, T>, topic: &str, init: impl FnOnce() -> T) -> &'a mut T {
    if !map.contains_key(topic) {
        if map.len() >= MAX_TRACKED_TOPICS {
            map.pop_first();
        }
        map.insert(topic.to_owned(), init());
    }
    // Present: inserted just above if it was missing.
    map.get_mut(topic).expect("topic state was just inserted")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    fn all_kinds() -> Vec<PartitionerKind> {
        vec![
            PartitionerKind::Explicit,
            PartitionerKind::KeyHash,
            PartitionerKind::RoundRobin,
            PartitionerKind::WeightedRoundRobin { weights: vec![3, 0, 1] },
            PartitionerKind::Random,
        ]
    }

    #[test]
    fn murmur2_matches_kafkas_published_vectors() {
        // Kafka's UtilsTest.testMurmur2 (expected values as Java ints).
        let kafka: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            (b"abc", 479_470_107),
        ];
        // Values other clients pin against the Java implementation (Akka's
        // Murmur2Spec; librdkafka's rdmurmur2.c), one per tail length 0..=3, and
        // the empty key (checked with an independent Python implementation).
        let others: [(&[u8], i32); 7] = [
            (b"1", -1_993_445_489),
            (b"12", 126_087_238),
            (b"123", -267_702_483),
            (b"1234", -1_614_185_708),
            (b"12345", -1_188_365_604),
            (b"kafka", -798_503_068),
            (b"", 275_646_681),
        ];
        for (key, want) in kafka.iter().chain(others.iter()) {
            // Java prints the same 32 bits as a signed int.
            assert_eq!(murmur2(key) as i32, *want, "murmur2({:?})", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn key_partition_is_kafkas_to_positive_modulo() {
        // toPositive(-790332482) = 1357151166; 1357151166 % 50 = 16.
        assert_eq!(key_partition(b"foobar", nz(50)), PartitionId(16));
        // Table computed with an independent Python implementation of the above.
        let table: [(&[u8], [u32; 4]); 4] = [
            (b"foobar", [0, 0, 6, 16]),
            (b"orders-42", [0, 1, 1, 7]),
            (b"customer-7", [0, 1, 7, 11]),
            (b"", [0, 0, 9, 31]),
        ];
        for (key, want) in table {
            for (n, p) in [1, 3, 12, 50].into_iter().zip(want) {
                assert_eq!(key_partition(key, nz(n)), PartitionId(p), "{:?} over {n}", String::from_utf8_lossy(key));
            }
        }
    }

    #[test]
    fn explicit_partition_wins_over_every_partitioner() {
        for kind in all_kinds() {
            let mut p = kind.build(Seed(1)).unwrap();
            for _ in 0..5 {
                let got = choose_partition(p.as_mut(), "orders", Some(PartitionId(2)), Some(b"foobar"), 3);
                assert_eq!(got, Ok(PartitionId(2)), "{kind:?}");
            }
        }
    }

    #[test]
    fn explicit_partition_out_of_range_is_an_error_not_a_panic() {
        let mut p = KeyHash::default();
        let got = choose_partition(&mut p, "orders", Some(PartitionId(3)), None, 3);
        assert_eq!(
            got,
            Err(PartitionError::UnknownPartition { topic: "orders".into(), partition: PartitionId(3), partitions: 3 })
        );
        assert_eq!(got.unwrap_err().to_string(), "orders/3 does not exist; the topic has partitions 0..3");
    }

    #[test]
    fn explicit_partitioner_refuses_sends_without_a_partition() {
        let got = choose_partition(&mut Explicit, "orders", None, Some(b"k"), 3);
        assert_eq!(got, Err(PartitionError::PartitionRequired { topic: "orders".into() }));
        assert_eq!(choose_partition(&mut Explicit, "orders", Some(PartitionId(1)), None, 3), Ok(PartitionId(1)));
    }

    #[test]
    fn a_topic_without_partitions_is_an_error_for_every_partitioner() {
        for kind in all_kinds() {
            let mut p = kind.build(Seed(1)).unwrap();
            for explicit in [None, Some(PartitionId(0))] {
                let got = choose_partition(p.as_mut(), "t", explicit, Some(b"k"), 0);
                assert_eq!(got, Err(PartitionError::NoPartitions { topic: "t".into() }), "{kind:?}");
            }
        }
    }

    #[test]
    fn same_key_same_partition_across_partitioners_and_topics() {
        // Two independent clients (fresh partitioners) agree, whatever came before.
        let mut a = KeyHash::default();
        let mut b = KeyHash::default();
        for i in 0..10 {
            a.partition("other", Some(format!("k{i}").as_bytes()), nz(7)).unwrap();
        }
        for key in [&b"user-1"[..], b"user-2", b"", b"\xff\x00"] {
            let pa = a.partition("orders", Some(key), nz(12)).unwrap();
            assert_eq!(pa, a.partition("orders", Some(key), nz(12)).unwrap());
            assert_eq!(pa, b.partition("payments", Some(key), nz(12)).unwrap());
            assert_eq!(pa, key_partition(key, nz(12)));
        }
    }

    #[test]
    fn keyless_records_round_robin_under_key_hash() {
        let mut p = KeyHash::default();
        let picks: Vec<u32> = (0..7).map(|_| p.partition("t", None, nz(3)).unwrap().get()).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn round_robin_cycles_per_topic_and_ignores_keys() {
        let mut p = RoundRobin::default();
        let mut picks = Vec::new();
        for i in 0..8 {
            picks.push(p.partition("a", Some(b"same key"), nz(4)).unwrap().get());
            if i % 2 == 0 {
                // Another topic's traffic does not move topic a's cycle.
                p.partition("b", None, nz(4)).unwrap();
            }
        }
        assert_eq!(picks, vec![0, 1, 2, 3, 0, 1, 2, 3]);
    }

    #[test]
    fn round_robin_forgets_topics_past_the_bound() {
        let mut p = RoundRobin::default();
        for i in 0..MAX_TRACKED_TOPICS + 10 {
            p.partition(&format!("topic-{i:05}"), None, nz(2)).unwrap();
        }
        assert_eq!(p.counters.len(), MAX_TRACKED_TOPICS);
    }

    #[test]
    fn weighted_ratios_are_exact_over_each_cycle() {
        let weights = vec![5, 0, 2, 1];
        let total: u32 = weights.iter().sum();
        let mut p = WeightedRoundRobin::new(weights.clone()).unwrap();
        for _cycle in 0..3 {
            let mut counts = [0u32; 4];
            for _ in 0..total {
                counts[p.partition("t", None, nz(4)).unwrap().get() as usize] += 1;
            }
            assert_eq!(counts.to_vec(), weights);
        }
    }

    #[test]
    fn weighted_picks_interleave_rather_than_burst() {
        let mut p = WeightedRoundRobin::new(vec![3, 1]).unwrap();
        let picks: Vec<u32> = (0..8).map(|_| p.partition("t", None, nz(2)).unwrap().get()).collect();
        assert!(!picks.windows(4).any(|w| w.iter().all(|x| *x == 0)), "{picks:?}");
    }

    #[test]
    fn weighted_missing_weights_are_zero_and_extra_ones_ignored() {
        // Partitions 2 and 3 have no weight: they get nothing.
        let mut p = WeightedRoundRobin::new(vec![1, 1]).unwrap();
        let picks: Vec<u32> = (0..6).map(|_| p.partition("t", None, nz(4)).unwrap().get()).collect();
        assert_eq!(picks, vec![0, 1, 0, 1, 0, 1]);
        // Weights past the topic's partitions are ignored.
        let mut p = WeightedRoundRobin::new(vec![1, 0, 9]).unwrap();
        assert!((0..5).all(|_| p.partition("t", None, nz(2)).unwrap() == PartitionId(0)));
        // None of the topic's partitions weighed: an error, not a panic.
        let mut p = WeightedRoundRobin::new(vec![0, 0, 9]).unwrap();
        assert_eq!(
            p.partition("t", None, nz(2)),
            Err(PartitionError::NoWeightedPartition { topic: "t".into(), partitions: 2 })
        );
    }

    #[test]
    fn weighted_refuses_weights_that_are_all_zero() {
        assert_eq!(WeightedRoundRobin::new(vec![]), Err(PartitionerConfigError::NoPositiveWeight));
        assert_eq!(WeightedRoundRobin::new(vec![0, 0]), Err(PartitionerConfigError::NoPositiveWeight));
        let kind = PartitionerKind::WeightedRoundRobin { weights: vec![0] };
        assert_eq!(kind.build(Seed(1)).err(), Some(PartitionerConfigError::NoPositiveWeight));
    }

    #[test]
    fn random_replays_under_the_same_seed_and_differs_under_another() {
        let draw = |seed: u64| -> Vec<u32> {
            let mut p = PartitionerKind::Random.build(Seed(seed)).unwrap();
            (0..32).map(|_| choose_partition(p.as_mut(), "t", None, None, 1000).unwrap().get()).collect()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        // `build` uses the named stream, so a hand-built one matches it.
        let mut p = Random::new(Seed(7).stream(RANDOM_STREAM));
        let by_hand: Vec<u32> = (0..32).map(|_| p.partition("t", None, nz(1000)).unwrap().get()).collect();
        assert_eq!(by_hand, draw(7));
    }

    #[test]
    fn random_spreads_over_every_partition() {
        let mut p = Random::new(Seed(3).stream(RANDOM_STREAM));
        let mut counts = [0u32; 8];
        for _ in 0..8000 {
            counts[p.partition("t", None, nz(8)).unwrap().get() as usize] += 1;
        }
        // Expected 1000 each; 800 is more than six standard deviations away.
        assert!(counts.iter().all(|c| *c > 800), "{counts:?}");
    }

    #[test]
    fn a_plugged_partitioner_out_of_range_is_reported() {
        #[derive(Debug)]
        struct Last;
        impl Partitioner for Last {
            fn partition(&mut self, _: &str, _: Option<&[u8]>, n: NonZeroU32) -> Result<PartitionId, PartitionError> {
                Ok(PartitionId(n.get())) // one past the end: a bug
            }
        }
        let mut boxed: Box<dyn Partitioner> = Box::new(Last);
        assert_eq!(
            choose_partition(boxed.as_mut(), "t", None, None, 4),
            Err(PartitionError::PartitionerOutOfRange { topic: "t".into(), partition: PartitionId(4), partitions: 4 })
        );
    }

    proptest! {
        #[test]
        fn every_partitioner_picks_inside_the_topic(
            partitions in prop_oneof![1u32..64, Just(u32::MAX), any::<u32>()],
            keys in proptest::collection::vec(proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)), 1..20),
            weights in proptest::collection::vec(0u32..5, 1..10),
            seed in any::<u64>(),
        ) {
            let mut kinds = all_kinds();
            let weighted_ok = weights.iter().any(|w| *w > 0);
            if weighted_ok {
                kinds.push(PartitionerKind::WeightedRoundRobin { weights: weights.clone() });
            }
            for kind in kinds {
                let mut p = kind.build(Seed(seed)).unwrap();
                for key in &keys {
                    let key = key.as_deref();
                    // No partitions: an error, never a panic.
                    prop_assert_eq!(
                        choose_partition(p.as_mut(), "t", None, key, 0),
                        Err(PartitionError::NoPartitions { topic: "t".into() })
                    );
                    match choose_partition(p.as_mut(), "t", None, key, partitions) {
                        Ok(got) => prop_assert!(got.get() < partitions, "{:?} picked {} of {}", kind, got, partitions),
                        Err(PartitionError::PartitionRequired { .. }) => {
                            prop_assert_eq!(&kind, &PartitionerKind::Explicit)
                        }
                        Err(PartitionError::NoWeightedPartition { .. }) => {
                            let PartitionerKind::WeightedRoundRobin { weights } = &kind else {
                                return Err(TestCaseError::fail(format!("{kind:?} reported no weight")));
                            };
                            let in_range = weights.iter().take(partitions as usize).any(|w| *w > 0);
                            prop_assert!(!in_range, "weights {:?} over {}", weights, partitions);
                        }
                        Err(e) => return Err(TestCaseError::fail(format!("{kind:?}: {e}"))),
                    }
                }
            }
        }

        #[test]
        fn an_explicit_partition_is_taken_iff_the_topic_has_it(
            partitions in 0u32..100,
            explicit in 0u32..120,
        ) {
            let got = choose_partition(&mut RoundRobin::default(), "t", Some(PartitionId(explicit)), None, partitions);
            if partitions == 0 {
                prop_assert!(matches!(got, Err(PartitionError::NoPartitions { .. })), "{:?}", got);
            } else if explicit < partitions {
                prop_assert_eq!(got, Ok(PartitionId(explicit)));
            } else {
                prop_assert!(matches!(got, Err(PartitionError::UnknownPartition { .. })), "{:?}", got);
            }
        }
    }
}
