//! The benchmark driver behind `rotor-bench` (issue 7 items 1 and 4, issue 8's OTP latency):
//! fleet rotation against plain OpenSSH and Ansible, the agent's memory while it rotates, and
//! OTP login latency. Each benchmark builds its own harness fleet, measures, checks that the
//! work really happened (logins with the new passwords), and returns a report section.
//!
//! Owns the measurement scripts, the statistics and `docs/benchmarks.md`'s sections it writes.
//! Must not assert targets (it measures and says), must not change what Rotor does, and is
//! never part of `cargo test` (only its pure parsing and statistics are unit-tested).

pub mod ansible;
pub mod fleet;
pub mod otp;
pub mod recovery;
pub mod report;
pub mod rss;
pub mod stats;

use rand::RngExt;

const PASSWORD_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";

/// A fresh random password for a benchmark account: letters and digits only, so it needs
/// no quoting in the scripts that carry it (always on stdin or in an environment variable).
pub fn fresh_password() -> String {
    let mut rng = rand::rng();
    (0..20)
        .map(|_| char::from(PASSWORD_ALPHABET[rng.random_range(0..PASSWORD_ALPHABET.len())]))
        .collect()
}
