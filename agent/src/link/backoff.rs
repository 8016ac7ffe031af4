//! Jittered exponential backoff between reconnection attempts ("full jitter": a random
//! delay between half the current ceiling and the ceiling, the ceiling doubling up to a max).
//!
//! Pure: owns no clock and no socket.

use std::time::Duration;

use rand::RngExt;

#[derive(Debug, Clone)]
pub struct Backoff {
    minimum: Duration,
    maximum: Duration,
    ceiling: Duration,
}

impl Backoff {
    pub fn new(minimum: Duration, maximum: Duration) -> Self {
        Self {
            minimum,
            maximum,
            ceiling: minimum,
        }
    }

    pub fn reset(&mut self) {
        self.ceiling = self.minimum;
    }

    pub fn next_delay(&mut self) -> Duration {
        let ceiling_ms = self.ceiling.as_millis().max(1) as u64;
        let delay_ms = rand::rng().random_range(ceiling_ms / 2..=ceiling_ms);
        self.ceiling = (self.ceiling * 2).min(self.maximum);
        Duration::from_millis(delay_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_maximum_and_reset() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let first = backoff.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        for _ in 0..10 {
            assert!(backoff.next_delay() <= Duration::from_millis(1000));
        }
        let late = backoff.next_delay();
        assert!(late >= Duration::from_millis(500), "{late:?}");
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}
