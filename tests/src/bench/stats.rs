//! Statistics over measured samples (nearest-rank percentiles, medians) and the parsing of
//! the `label value` lines the in-container timing scripts print.
//! Pure: no I/O, no harness.

use anyhow::{Context, Result, bail};

/// The nearest-rank `p`-th percentile (0 < p ≤ 100) of `samples`; None when empty.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    if samples.is_empty() || !(p > 0.0 && p <= 100.0) {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// The median (nearest rank, p50) of `samples`.
pub fn median(samples: &[f64]) -> Option<f64> {
    percentile(samples, 50.0)
}

/// The value of the first `label N` line of a script's output (N an integer).
pub fn labelled_value(output: &str, label: &str) -> Result<u64> {
    output
        .lines()
        .find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some(label))
                .then(|| words.next())
                .flatten()
        })
        .with_context(|| format!("no `{label} N` line in: {}", output.trim()))?
        .parse()
        .with_context(|| format!("`{label}` is not followed by an integer"))
}

/// One timed attempt printed by a timing script: `sample KIND EXIT NANOSECONDS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub kind: String,
    pub exit_code: i32,
    pub nanos: u64,
}

/// Every `sample KIND EXIT NANOS` line of `output`; other lines are ignored, a malformed
/// sample line is an error.
pub fn samples(output: &str) -> Result<Vec<Sample>> {
    let mut found = Vec::new();
    for line in output.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() != Some(&"sample") {
            continue;
        }
        let [_, kind, exit_code, nanos] = words[..] else {
            bail!("malformed sample line `{line}`");
        };
        found.push(Sample {
            kind: kind.to_string(),
            exit_code: exit_code
                .parse()
                .with_context(|| format!("exit code in `{line}`"))?,
            nanos: nanos
                .parse()
                .with_context(|| format!("nanoseconds in `{line}`"))?,
        });
    }
    Ok(found)
}

/// Milliseconds of the samples of `kind`.
pub fn millis_of(samples: &[Sample], kind: &str) -> Vec<f64> {
    samples
        .iter()
        .filter(|sample| sample.kind == kind)
        .map(|sample| sample.nanos as f64 / 1e6)
        .collect()
}

/// `a / b`, or NaN when `b` is zero (printed as such rather than dividing by zero).
pub fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 { f64::NAN } else { a / b }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let data: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&data, 50.0), Some(50.0));
        assert_eq!(percentile(&data, 99.0), Some(99.0));
        assert_eq!(percentile(&data, 100.0), Some(100.0));
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50.0), Some(2.0));
        assert_eq!(median(&[5.0]), Some(5.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&data, 0.0), None);
        // Unsorted input, p99 of ten samples is the largest.
        let ten = [9.0, 1.0, 8.0, 2.0, 7.0, 3.0, 6.0, 4.0, 5.0, 10.0];
        assert_eq!(percentile(&ten, 99.0), Some(10.0));
    }

    #[test]
    fn labelled_values_and_samples() -> Result<()> {
        let output =
            "noise\nwall_ns 4200000000\nsample otp 0 12000000\nsample password 5 9000000\n";
        assert_eq!(labelled_value(output, "wall_ns")?, 4_200_000_000);
        assert!(labelled_value(output, "missing").is_err());
        assert!(labelled_value("wall_ns x", "wall_ns").is_err());
        let parsed = samples(output)?;
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[1].kind, "password");
        assert_eq!(parsed[1].exit_code, 5);
        assert_eq!(millis_of(&parsed, "otp"), vec![12.0]);
        assert!(samples("sample otp 0").is_err());
        assert!(samples("sample otp zero 1").is_err());
        assert!(ratio(1.0, 0.0).is_nan());
        assert_eq!(ratio(3.0, 2.0), 1.5);
        Ok(())
    }
}
