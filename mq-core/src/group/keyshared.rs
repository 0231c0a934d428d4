//! `key_shared` delivery (DESIGN.md section 7, Pulsar's Key_Shared): records with
//! the same key go to the same member while membership is stable, by consistent
//! hashing. Each member owns `VNODES` points on a 64-bit ring; a key goes to the
//! first point at or after its hash. Adding a member moves only keys to it; removing
//! one moves only its keys. The hash is FNV-1a 64 (`rng::fnv1a`), stable across
//! platforms and versions, applied to the key bytes and, for the points, to the
//! member id and point index.

use crate::ids::MemberId;
use crate::rng::fnv1a;
use std::collections::BTreeSet;

/// Points per member: enough that shares stay within a few percent of even.
pub const VNODES: u32 = 64;

/// The ring for one membership.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HashRing {
    points: Vec<(u64, MemberId)>,
}

fn point(member: MemberId, i: u32) -> u64 {
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&member.0.to_be_bytes());
    bytes[8..].copy_from_slice(&i.to_be_bytes());
    // FNV alone clusters on short, similar inputs; a final mix spreads the points.
    mix(fnv1a(&bytes))
}

/// A 64-bit finalizer (the one from SplitMix64) so nearby inputs land far apart.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl HashRing {
    /// The ring of `members`.
    pub fn new(members: &BTreeSet<MemberId>) -> Self {
        let mut points: Vec<(u64, MemberId)> =
            members.iter().flat_map(|m| (0..VNODES).map(move |i| (point(*m, i), *m))).collect();
        points.sort_unstable();
        HashRing { points }
    }

    /// The member that gets `key` (`None` with no member). Records without a key
    /// use their offset's bytes as the key, spreading them.
    pub fn member_for(&self, key: &[u8]) -> Option<MemberId> {
        if self.points.is_empty() {
            return None;
        }
        let h = mix(fnv1a(key));
        let i = self.points.partition_point(|(p, _)| *p < h);
        Some(self.points.get(i).unwrap_or(&self.points[0]).1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn ring(ids: &[u64]) -> HashRing {
        HashRing::new(&ids.iter().map(|i| MemberId(*i)).collect())
    }

    fn keys() -> Vec<Vec<u8>> {
        (0..4000u32).map(|i| format!("key-{i}").into_bytes()).collect()
    }

    #[test]
    fn the_same_key_always_goes_to_the_same_member() {
        let r = ring(&[1, 2, 3]);
        for k in keys() {
            assert_eq!(r.member_for(&k), r.member_for(&k));
        }
        assert_eq!(ring(&[]).member_for(b"x"), None);
    }

    #[test]
    fn a_joining_member_takes_keys_only_from_others_and_about_its_share() {
        let before = ring(&[1, 2, 3]);
        let after = ring(&[1, 2, 3, 4]);
        let mut moved = 0;
        for k in keys() {
            let (b, a) = (before.member_for(&k).unwrap(), after.member_for(&k).unwrap());
            if a != b {
                assert_eq!(a, MemberId(4), "a key moved between two old members");
                moved += 1;
            }
        }
        let share = moved as f64 / keys().len() as f64;
        assert!((0.15..0.35).contains(&share), "the new member took {share:.2} of the keys");
    }

    #[test]
    fn a_leaving_member_gives_away_only_its_own_keys() {
        let before = ring(&[1, 2, 3]);
        let after = ring(&[1, 3]);
        for k in keys() {
            let (b, a) = (before.member_for(&k).unwrap(), after.member_for(&k).unwrap());
            if b != MemberId(2) {
                assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn keys_spread_roughly_evenly() {
        let r = ring(&[1, 2, 3, 4]);
        let mut counts: BTreeMap<MemberId, usize> = BTreeMap::new();
        for k in keys() {
            *counts.entry(r.member_for(&k).unwrap()).or_default() += 1;
        }
        for (m, c) in counts {
            assert!((600..1400).contains(&c), "member {m} got {c} of 4000");
        }
    }
}
