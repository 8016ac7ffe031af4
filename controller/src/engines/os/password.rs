//! Candidate passwords: drawn from the OS CSPRNG with no modulo bias (`random_range`), with
//! at least one character of each class so common host policies accept them.
//!
//! Owns the default policy only; named password policies (`sys/policies/password`) come
//! with the scheduling issue. Must not log or return what it generates anywhere but to the
//! caller.

use rand::RngExt;
use rotor_common::secret::Password;

const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const DIGITS: &[u8] = b"23456789";
const SYMBOLS: &[u8] = b"-_.,!@#%^*+=";

/// A fresh password of `length` (at least 8) characters.
pub fn generate(length: usize) -> Password {
    let length = length.max(8);
    let classes: [&[u8]; 4] = [LOWER, UPPER, DIGITS, SYMBOLS];
    let all: Vec<u8> = classes
        .iter()
        .flat_map(|class| class.iter().copied())
        .collect();
    let mut rng = rand::rng();
    let mut chars: Vec<u8> = classes
        .iter()
        .map(|class| class[rng.random_range(0..class.len())])
        .collect();
    while chars.len() < length {
        chars.push(all[rng.random_range(0..all.len())]);
    }
    // Fisher-Yates, so the guaranteed characters are not always first.
    for index in (1..chars.len()).rev() {
        let other = rng.random_range(0..=index);
        chars.swap(index, other);
    }
    Password::new(String::from_utf8(chars).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_have_every_class_and_differ() {
        let first = generate(24);
        assert_eq!(first.expose().len(), 24);
        for class in [LOWER, UPPER, DIGITS, SYMBOLS] {
            assert!(first.expose().bytes().any(|b| class.contains(&b)));
        }
        assert_ne!(first.expose(), generate(24).expose());
        assert_eq!(generate(3).expose().len(), 8);
    }

    #[test]
    fn characters_are_spread_evenly() {
        // 20,000 draws of 64 characters over an alphabet of 69: each character is expected
        // ~18,550 times; a biased generator would be far outside 5%.
        let alphabet_size = LOWER.len() + UPPER.len() + DIGITS.len() + SYMBOLS.len();
        let mut counts = std::collections::HashMap::new();
        for _ in 0..20_000 {
            for byte in generate(64).expose().bytes() {
                *counts.entry(byte).or_insert(0u32) += 1;
            }
        }
        assert_eq!(counts.len(), alphabet_size);
        let expected = 20_000.0 * 64.0 / alphabet_size as f64;
        for (byte, count) in counts {
            let deviation = (f64::from(count) - expected).abs() / expected;
            // Guaranteed class members skew small classes upward a little.
            assert!(
                deviation < 0.15,
                "{} drawn {count} times, expected ~{expected:.0}",
                byte as char
            );
        }
    }
}
