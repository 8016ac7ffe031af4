//! The agent's memory, read from the build machine's /proc (containers share its kernel, so
//! no `docker exec` perturbs the run): the process's host PID from `docker top`, its peak
//! (VmHWM, reset before a measurement through `clear_refs`) and VmRSS sampled by a thread.
//! Reads only; never signals or changes the process beyond resetting its peak counter.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::docker::docker;

/// The host PID of the process named `command` (its `comm`) inside `container`.
pub fn host_pid(container: &str, command: &str) -> Result<u32> {
    let listing = docker(&["top", container, "-eo", "pid,comm"])
        .with_context(|| format!("listing processes of {container}"))?;
    let pids: Vec<u32> = listing
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let pid = words.next()?.parse().ok()?;
            (words.next() == Some(command)).then_some(pid)
        })
        .collect();
    match pids[..] {
        [pid] => Ok(pid),
        [] => bail!("no `{command}` process in {container}:\n{listing}"),
        _ => bail!("several `{command}` processes in {container}: {pids:?}"),
    }
}

/// A `Vm…:` field of /proc/PID/status, in KiB.
pub fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    parse_status_kib(&status, field).with_context(|| format!("{field} in /proc/{pid}/status"))
}

/// `field` (e.g. `VmHWM`) of a /proc/PID/status text, in KiB.
pub fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        let mut words = rest.split_whitespace();
        let value = words.next()?.parse().ok()?;
        (words.next() == Some("kB")).then_some(value)
    })
}

/// Resets the process's peak RSS (VmHWM) to its current RSS (`echo 5 > clear_refs`).
pub fn reset_peak(pid: u32) -> Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .with_context(|| format!("resetting the peak RSS of PID {pid}"))
}

/// Samples VmRSS every `every` until stopped; answers (samples, max) in KiB.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<u64>>,
}

impl Sampler {
    pub fn start(pid: u32, every: Duration) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if let Ok(kib) = status_kib(pid, "VmRSS") {
                    samples.push(kib);
                }
                std::thread::sleep(every);
            }
            samples
        });
        Sampler { stop, thread }
    }

    /// Stops sampling; every VmRSS sample taken, in KiB.
    pub fn finish(self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// KiB as MiB with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_in_kib() {
        let status = "Name:\trotor-agent\nVmHWM:\t   13056 kB\nVmRSS:\t   12000 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(13056));
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(12000));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
        assert_eq!(parse_status_kib("VmRSS:\t12 MB\n", "VmRSS"), None);
        assert_eq!(mib(1536), "1.5");
    }
}
