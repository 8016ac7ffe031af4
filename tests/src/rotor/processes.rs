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

/// The log filter Rotor processes in containers run with: the test's `ROTOR_LOG`, else
/// debug for Rotor's own code, so every scenario's logs are worth scanning for secrets
/// (`foundation_no_secrets_in_logs` does).
pub const DEFAULT_ROTOR_LOG: &str =
    "debug,quinn=warn,rustls=warn,h2=info,hyper=info,hyper_util=info,reqwest=info";

/// The environment that hands [`DEFAULT_ROTOR_LOG`] (or the test's own `ROTOR_LOG`) to
/// Rotor processes.
pub(crate) fn rust_log_passthrough<'a>() -> Vec<(&'static str, &'a str)> {
    static ROTOR_LOG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let value = ROTOR_LOG
        .get_or_init(|| std::env::var("ROTOR_LOG").unwrap_or_else(|_| DEFAULT_ROTOR_LOG.into()));
    vec![("ROTOR_LOG", value.as_str())]
}

/// The last `lines` lines of `text`.
pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
