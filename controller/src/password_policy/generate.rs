//! Passwords drawn from a policy with the operating system's CSPRNG (`getrandom`).
//!
//! Every character is an unbiased draw: a uniform index below `n` comes from rejection
//! sampling over 32-bit words (words in the last, partial stretch of `n`s are thrown away),
//! never from a bare modulo. Each rule's `min-chars` are drawn from its charset first, the
//! rest from the union of all charsets, then a Fisher-Yates shuffle (with the same unbiased
//! draws) puts every character at every position with equal probability.
//!
//! Owns generation only; policies are parsed and validated by `policy.rs`. Must not log, keep
//! or return a generated password anywhere but to its caller.

use rand::TryRng;
use rand::rngs::SysRng;
use rotor_common::secret::Password;
use zeroize::{Zeroize, Zeroizing};

use super::policy::PasswordPolicy;

/// Why no password could be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenerateError {
    #[error("the operating system's random number generator failed: {0}")]
    Entropy(String),
}

/// Where random 32-bit words come from; the OS in production, a script in tests.
pub trait RandomSource {
    fn next_u32(&mut self) -> Result<u32, GenerateError>;
}

/// The OS CSPRNG, read 256 bytes at a time; the buffer is wiped on drop.
pub struct OsRandom {
    buffer: [u8; 256],
    used: usize,
}

impl OsRandom {
    pub fn new() -> Self {
        Self {
            buffer: [0; 256],
            used: 256,
        }
    }
}

impl Default for OsRandom {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for OsRandom {
    fn drop(&mut self) {
        self.buffer.zeroize();
    }
}

impl RandomSource for OsRandom {
    fn next_u32(&mut self) -> Result<u32, GenerateError> {
        if self.used + 4 > self.buffer.len() {
            SysRng
                .try_fill_bytes(&mut self.buffer)
                .map_err(|error| GenerateError::Entropy(error.to_string()))?;
            self.used = 0;
        }
        let mut word = [0u8; 4];
        word.copy_from_slice(&self.buffer[self.used..self.used + 4]);
        self.buffer[self.used..self.used + 4].zeroize();
        self.used += 4;
        Ok(u32::from_le_bytes(word))
    }
}

/// A uniform integer in `0..bound` (`bound` > 0) by rejection sampling: words at or above the
/// largest multiple of `bound` that fits in 2^32 are drawn again, so every residue is equally
/// likely.
pub fn uniform_below(source: &mut impl RandomSource, bound: usize) -> Result<usize, GenerateError> {
    let bound = u64::try_from(bound).unwrap_or(u64::MAX).clamp(1, 1 << 32);
    let range: u64 = 1 << 32;
    let limit = range - range % bound;
    loop {
        let word = u64::from(source.next_u32()?);
        if word < limit {
            // word % bound < bound <= 2^32, so it fits in usize on every platform Rotor runs.
            return Ok((word % bound) as usize);
        }
    }
}

/// A fresh password obeying `policy`, from the OS CSPRNG.
pub fn generate(policy: &PasswordPolicy) -> Result<Password, GenerateError> {
    generate_with(policy, &mut OsRandom::new())
}

/// A fresh password obeying `policy`, from `source`.
pub fn generate_with(
    policy: &PasswordPolicy,
    source: &mut impl RandomSource,
) -> Result<Password, GenerateError> {
    let alphabet = policy.alphabet();
    let mut characters: Zeroizing<Vec<char>> = Zeroizing::new(Vec::with_capacity(policy.length));
    for rule in &policy.rules {
        for _ in 0..rule.min_chars {
            characters.push(rule.charset[uniform_below(source, rule.charset.len())?]);
        }
    }
    while characters.len() < policy.length {
        characters.push(alphabet[uniform_below(source, alphabet.len())?]);
    }
    // Fisher-Yates: position `index` takes a uniform pick among positions 0..=index.
    for index in (1..characters.len()).rev() {
        let other = uniform_below(source, index + 1)?;
        characters.swap(index, other);
    }
    Ok(Password::new(characters.iter().collect::<String>()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::password_policy::policy::CharsetRule;

    /// Words from a script, for checking what rejection sampling throws away.
    struct Scripted(std::vec::IntoIter<u32>);

    impl RandomSource for Scripted {
        fn next_u32(&mut self) -> Result<u32, GenerateError> {
            self.0
                .next()
                .ok_or_else(|| GenerateError::Entropy("script exhausted".into()))
        }
    }

    #[test]
    fn words_in_the_partial_last_stretch_are_rejected() {
        // 2^32 % 3 == 1: the single word u32::MAX would favour residue 0, so it is redrawn.
        let mut source = Scripted(vec![u32::MAX, 7].into_iter());
        assert_eq!(uniform_below(&mut source, 3), Ok(1));
        // 2^32 % 10 == 6: the top six words are redrawn.
        let mut source = Scripted(vec![u32::MAX - 5, u32::MAX - 6].into_iter());
        assert_eq!(
            uniform_below(&mut source, 10),
            Ok(((u32::MAX - 6) % 10) as usize)
        );
        // A power of two rejects nothing.
        let mut source = Scripted(vec![u32::MAX].into_iter());
        assert_eq!(uniform_below(&mut source, 16), Ok(15));
    }

    fn rule(charset: &str, min_chars: usize) -> CharsetRule {
        CharsetRule {
            charset: charset.chars().collect(),
            min_chars,
        }
    }

    /// Pearson's statistic for `observed` against `expected` counts.
    fn chi_square(observed: &[f64], expected: &[f64]) -> f64 {
        observed
            .iter()
            .zip(expected)
            .map(|(o, e)| (o - e) * (o - e) / e)
            .sum()
    }

    /// The chi-square value with `degrees` degrees of freedom exceeded with probability about
    /// one in a million (Wilson-Hilferty), so a correct generator essentially never fails.
    fn critical_value(degrees: f64) -> f64 {
        let z = 4.75;
        let term = 2.0 / (9.0 * degrees);
        degrees * (1.0 - term + z * term.sqrt()).powi(3)
    }

    #[test]
    fn generated_passwords_obey_the_policy() {
        let policy = PasswordPolicy::new(
            12,
            vec![rule("ab", 3), rule("0123456789", 4), rule("!?", 1)],
        )
        .expect("valid");
        for _ in 0..2_000 {
            let password = generate(&policy).expect("entropy");
            assert!(policy.accepts(password.expose()), "{:?}", password);
        }
        assert_ne!(
            generate(&policy).expect("a").expose(),
            generate(&policy).expect("b").expose()
        );
    }

    #[test]
    fn characters_follow_the_expected_distribution() {
        // Overlapping rules: 'a'..'d' are both guaranteed and drawn again in the fill, so each
        // character's expected frequency differs and a biased draw shows up against it.
        let policy = PasswordPolicy::new(
            10,
            vec![rule("abcd", 2), rule("abcdefghijklmnopqrstuvwxyz012", 1)],
        )
        .expect("valid");
        let alphabet = policy.alphabet();
        let draws = 30_000usize;
        let mut counts = vec![0f64; alphabet.len()];
        for _ in 0..draws {
            for character in generate(&policy).expect("entropy").expose().chars() {
                let index = alphabet
                    .iter()
                    .position(|c| *c == character)
                    .expect("in alphabet");
                counts[index] += 1.0;
            }
        }
        let fill = (policy.length - 3) as f64;
        let expected: Vec<f64> = alphabet
            .iter()
            .map(|character| {
                let guaranteed: f64 = policy
                    .rules
                    .iter()
                    .filter(|rule| rule.charset.contains(character))
                    .map(|rule| rule.min_chars as f64 / rule.charset.len() as f64)
                    .sum();
                (guaranteed + fill / alphabet.len() as f64) * draws as f64
            })
            .collect();
        let statistic = chi_square(&counts, &expected);
        let bound = critical_value((alphabet.len() - 1) as f64);
        assert!(
            statistic < bound,
            "chi-square {statistic:.1} over {bound:.1}: counts {counts:?}"
        );
        // The same test catches a skew of a few percent on one character: it is not vacuous.
        let mut skewed = counts.clone();
        skewed[0] *= 1.05;
        skewed[1] *= 0.95;
        assert!(chi_square(&skewed, &expected) > bound);
    }

    #[test]
    fn guaranteed_characters_land_on_every_position_equally() {
        // 'X' is drawn first for min-chars; without an unbiased shuffle it would sit at
        // position 0.
        let policy =
            PasswordPolicy::new(8, vec![rule("X", 1), rule("abcdefghijklmnop", 0)]).expect("ok");
        let draws = 20_000usize;
        let mut per_position = vec![0f64; policy.length];
        for _ in 0..draws {
            let password = generate(&policy).expect("entropy");
            for (position, character) in password.expose().chars().enumerate() {
                if character == 'X' {
                    per_position[position] += 1.0;
                }
            }
        }
        let total: f64 = per_position.iter().sum();
        let expected = vec![total / policy.length as f64; policy.length];
        let statistic = chi_square(&per_position, &expected);
        let bound = critical_value((policy.length - 1) as f64);
        assert!(
            statistic < bound,
            "chi-square {statistic:.1} over {bound:.1}: {per_position:?}"
        );
    }
}
