//! Polling with a deadline: the one place tests wait for a condition to become true.
//! Never sleeps a fixed time in place of checking.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// Calls `condition` until it returns Ok(true), for at most `timeout`. An Err from
/// `condition` ends the wait at once. The error names `what` was awaited.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut condition: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        if condition()? {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            bail!("timed out after {} s waiting for {what}", timeout.as_secs());
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}
