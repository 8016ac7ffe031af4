//! Rotor's long-running processes inside containers: stopping them politely, passing
//! the test's RUST_LOG on, and trimming their logs for error messages.
//! Knows no command lines of its own; controller.rs and agent.rs say what to run.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::container::Container;
use crate::faults::Faults;
use crate::wait::wait_until;

/// SIGTERM to `process_name`, SIGKILL if still there after 10 s; Ok if none ran.
pub(crate) fn stop_process(container: &Container, process_name: &str) -> Result<()> {
    container.exec_output(&format!("pkill -TERM -x {process_name}"))?;
    let gone = wait_until(
        &format!(
            "`{process_name}` to exit after SIGTERM in {}",
            container.role()
        ),
        Duration::from_secs(10),
        || {
            Ok(!container
                .exec_output(&format!("pgrep -x {process_name}"))?
                .success())
        },
    );
    if gone.is_err() {
        container
            .kill_process(process_name)
            .with_context(|| format!("`{process_name}` ignored SIGTERM in {}", container.role()))?;
    }
    Ok(())
}

/// Forwards the test's RUST_LOG (if any) to Rotor processes.
pub(crate) fn rust_log_passthrough<'a>() -> Vec<(&'static str, &'a str)> {
    static RUST_LOG: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    match RUST_LOG.get_or_init(|| std::env::var("RUST_LOG").ok()) {
        Some(value) => vec![("RUST_LOG", value.as_str())],
        None => Vec::new(),
    }
}

/// The last `lines` lines of `text`.
pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
