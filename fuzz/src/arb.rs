//! Arbitrary values of any wire type, drawn from fuzz bytes.
//!
//! mq-core's wire types derive serde's `Deserialize` (postcard carries them), so
//! rather than adding `arbitrary` derives to mq-core, [`value`] runs a type's
//! `Deserialize` impl against a deserializer that *invents* the data from an
//! [`Unstructured`]: every enum variant, every field, every length is a fuzz choice.
//! The result is a well-formed value of the type (the shapes postcard could
//! decode) with contents that are anything at all.
//!
//! Plain arbitrary integers would almost never name an offset, a term or a
//! correlation id the machine knows, so numbers and strings are biased: small
//! values, type extremes, and values from a [`Hints`] pool that the drivers fill
//! with what the machine under test just sent (so a reply can echo a real
//! correlation id, a real leader epoch, a real topic name).

use arbitrary::Unstructured;
use serde::de::{self, DeserializeSeed, Visitor};
use std::fmt;

/// Most elements one value may hold (bounds the work per step).
const MAX_ELEMENTS: usize = 96;
/// Deeper than this, sequences are empty and options `None`.
const MAX_DEPTH: usize = 7;

/// Names the fuzzer picks from most of the time: topics, groups, principals, plus
/// invalid and boundary names.
const NAMES: &[&str] = &["t", "u", "t.dlq", "__groups", "g", "admin", "app", "", "..", "a b", "t/0"];

/// Numbers and strings seen recently in a machine's outputs.
#[derive(Clone, Debug, Default)]
pub struct Hints {
    /// Integers, most recent last.
    pub numbers: Vec<u64>,
    /// Strings, most recent last.
    pub strings: Vec<String>,
}

impl Hints {
    /// Keep at most this many of each.
    const CAP: usize = 64;

    /// Remembers a number (skips repeats of the last few).
    pub fn number(&mut self, n: u64) {
        if self.numbers.iter().rev().take(8).any(|&m| m == n) {
            return;
        }
        if self.numbers.len() == Self::CAP {
            self.numbers.remove(0);
        }
        self.numbers.push(n);
    }

    /// Remembers a string.
    pub fn string(&mut self, s: &str) {
        if s.len() > 64 || self.strings.iter().any(|m| m == s) {
            return;
        }
        if self.strings.len() == Self::CAP {
            self.strings.remove(0);
        }
        self.strings.push(s.to_owned());
    }

    /// Remembers every number and string inside `value`.
    pub fn collect<T: serde::Serialize + ?Sized>(&mut self, value: &T) {
        crate::collect::collect(value, self);
    }
}

/// Draws a value of `T` from `u`, biased by `hints`. Fails only when `T`'s own
/// `Deserialize` refuses what was drawn (or the bytes ran out mid-way in a way
/// the type cannot accept).
pub fn value<'de, T: de::Deserialize<'de>>(u: &mut Unstructured<'_>, hints: &Hints) -> Result<T, Error> {
    let mut d = Gen { u, hints, depth: 0, elements: 0 };
    T::deserialize(&mut d)
}

/// Draws a biased number in `0..=max` (exposed for drivers).
pub fn number(u: &mut Unstructured<'_>, hints: &Hints, max: u64) -> u64 {
    let mut d = Gen { u, hints, depth: 0, elements: 0 };
    d.number(max)
}

/// Why a draw failed.
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

struct Gen<'a, 'b, 'h> {
    u: &'a mut Unstructured<'b>,
    hints: &'h Hints,
    depth: usize,
    elements: usize,
}

impl Gen<'_, '_, '_> {
    fn byte(&mut self) -> u8 {
        self.u.arbitrary().unwrap_or(0)
    }

    fn number(&mut self, max: u64) -> u64 {
        let pick = |u: &mut Unstructured<'_>, n: usize| u.choose_index(n).unwrap_or(0);
        match self.byte() % 16 {
            0..=6 => u64::from(self.byte() % 5).min(max),
            7..=11 if !self.hints.numbers.is_empty() => {
                let n = self.hints.numbers[pick(self.u, self.hints.numbers.len())];
                // The value itself, or one off either side.
                let n = match self.byte() % 4 {
                    0 => n.wrapping_add(1),
                    1 => n.wrapping_sub(1),
                    _ => n,
                };
                if n <= max {
                    n
                } else {
                    n % (max.wrapping_add(1)).max(1)
                }
            }
            12 => max,
            13 => max / 2 + u64::from(self.byte() % 2),
            _ => {
                let raw: u64 = self.u.arbitrary().unwrap_or(0);
                if max == u64::MAX {
                    raw
                } else {
                    raw % (max + 1)
                }
            }
        }
    }

    fn signed(&mut self, min: i64, max: i64) -> i64 {
        match self.byte() % 8 {
            0 => min,
            1 => max,
            2 => -1,
            _ => self.number(max as u64) as i64,
        }
    }

    fn string(&mut self) -> String {
        match self.byte() % 10 {
            0..=5 => NAMES[self.u.choose_index(NAMES.len()).unwrap_or(0)].to_owned(),
            6..=7 if !self.hints.strings.is_empty() => {
                self.hints.strings[self.u.choose_index(self.hints.strings.len()).unwrap_or(0)].clone()
            }
            8 => "x".repeat(usize::from(self.byte()) + 200),
            _ => {
                let s: &str = self.u.arbitrary().unwrap_or("");
                s.chars().take(40).collect()
            }
        }
    }

    fn bytes(&mut self) -> Vec<u8> {
        let len = match self.byte() % 8 {
            0 => 0,
            1 => usize::from(self.byte()) * 16,
            _ => usize::from(self.byte() % 12),
        };
        let len = len.min(self.u.len().max(4));
        let mut out = vec![0u8; len];
        let _ = self.u.fill_buffer(&mut out);
        out
    }

    /// How many elements the next sequence gets.
    fn length(&mut self) -> usize {
        if self.depth >= MAX_DEPTH || self.elements >= MAX_ELEMENTS || self.u.is_empty() {
            return 0;
        }
        let n = match self.byte() % 8 {
            0..=1 => 0,
            2..=4 => 1,
            5..=6 => usize::from(self.byte() % 4),
            _ => usize::from(self.byte() % 16),
        };
        n.min(MAX_ELEMENTS - self.elements)
    }
}

struct Elements<'g, 'a, 'b, 'h> {
    gen: &'g mut Gen<'a, 'b, 'h>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Elements<'_, '_, '_, '_> {
    type Error = Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        self.gen.elements += 1;
        self.gen.depth += 1;
        let v = seed.deserialize(&mut *self.gen);
        self.gen.depth -= 1;
        v.map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> de::MapAccess<'de> for Elements<'_, '_, '_, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        self.gen.elements += 1;
        self.gen.depth += 1;
        let v = seed.deserialize(&mut *self.gen);
        self.gen.depth -= 1;
        v.map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        self.gen.depth += 1;
        let v = seed.deserialize(&mut *self.gen);
        self.gen.depth -= 1;
        v
    }
}

struct Variant<'g, 'a, 'b, 'h> {
    gen: &'g mut Gen<'a, 'b, 'h>,
}

impl<'de> de::VariantAccess<'de> for Variant<'_, '_, '_, '_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        self.gen.depth += 1;
        let v = seed.deserialize(&mut *self.gen);
        self.gen.depth -= 1;
        v
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(Elements { gen: self.gen, left: len })
    }

    fn struct_variant<V: Visitor<'de>>(self, fields: &'static [&'static str], visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(Elements { gen: self.gen, left: fields.len() })
    }
}

/// An `EnumAccess` whose variant index was already drawn.
struct Chosen<'g, 'a, 'b, 'h> {
    gen: &'g mut Gen<'a, 'b, 'h>,
    index: u32,
}

impl<'de, 'g, 'a, 'b, 'h> de::EnumAccess<'de> for Chosen<'g, 'a, 'b, 'h> {
    type Error = Error;
    type Variant = Variant<'g, 'a, 'b, 'h>;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self::Variant), Error> {
        let de: de::value::U32Deserializer<Error> = de::IntoDeserializer::into_deserializer(self.index);
        let v = seed.deserialize(de)?;
        Ok((v, Variant { gen: self.gen }))
    }
}

macro_rules! unsigned {
    ($($method:ident $visit:ident $t:ty;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            let n = self.number(<$t>::MAX as u64) as $t;
            visitor.$visit(n)
        }
    )*};
}

macro_rules! signed {
    ($($method:ident $visit:ident $t:ty;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            let n = self.signed(<$t>::MIN as i64, <$t>::MAX as i64) as $t;
            visitor.$visit(n)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for &mut Gen<'_, '_, '_> {
    type Error = Error;

    unsigned! {
        deserialize_u8 visit_u8 u8;
        deserialize_u16 visit_u16 u16;
        deserialize_u32 visit_u32 u32;
        deserialize_u64 visit_u64 u64;
    }

    signed! {
        deserialize_i8 visit_i8 i8;
        deserialize_i16 visit_i16 i16;
        deserialize_i32 visit_i32 i32;
        deserialize_i64 visit_i64 i64;
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u128(u128::from(self.number(u64::MAX)))
    }

    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i128(i128::from(self.signed(i64::MIN, i64::MAX)))
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
        Err(Error("self-describing data is not generated".into()))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let b = self.byte() & 1 == 1;
        visitor.visit_bool(b)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_f32(self.u.arbitrary().unwrap_or(0.0))
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_f64(self.u.arbitrary().unwrap_or(0.0))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_char(self.u.arbitrary().unwrap_or('a'))
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let s = self.string();
        visitor.visit_string(s)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let s = self.string();
        visitor.visit_string(s)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let b = self.bytes();
        visitor.visit_byte_buf(b)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let b = self.bytes();
        visitor.visit_byte_buf(b)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.depth >= MAX_DEPTH || self.byte() % 5 < 2 {
            visitor.visit_none()
        } else {
            self.depth += 1;
            let v = visitor.visit_some(&mut *self);
            self.depth -= 1;
            v
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let left = self.length();
        visitor.visit_seq(Elements { gen: self, left })
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(Elements { gen: self, left: len })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_seq(Elements { gen: self, left: len })
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let left = self.length();
        visitor.visit_map(Elements { gen: self, left })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_seq(Elements { gen: self, left: fields.len() })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let index = self.u.choose_index(variants.len()).unwrap_or(0) as u32;
        visitor.visit_enum(Chosen { gen: self, index })
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let n = self.number(u64::from(u32::MAX)) as u32;
        visitor.visit_u32(n)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}
