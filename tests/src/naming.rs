//! Names and labels of everything the harness creates in Docker.
//! Every container, network and volume carries `rotor-test=1`, the id of the test run
//! that made it and the pid of the test process, so parallel tests never collide and
//! leftovers of dead processes can be swept (see `cleanup`). Creates nothing itself.

use std::cell::OnceCell;

use anyhow::{Result, bail};

/// Label on every resource the harness creates.
pub const LABEL: &str = "rotor-test=1";
/// Label key holding the test process's pid.
pub const PID_LABEL_KEY: &str = "rotor-test.pid";
/// Label key holding the run id (one per test thread).
pub const RUN_LABEL_KEY: &str = "rotor-test.run";

thread_local! {
    // libtest runs each test on its own thread, so a per-thread id is a per-test id.
    static RUN_ID: OnceCell<String> = const { OnceCell::new() };
}

/// A random id shared by the resources one test creates, e.g. `rt3fa9c1d2`.
pub fn current_run_id() -> String {
    RUN_ID.with(|cell| {
        cell.get_or_init(|| format!("rt{:08x}", rand::random::<u32>()))
            .clone()
    })
}

/// `docker` arguments that attach the common labels to a resource of run `run_id`.
pub fn label_args(run_id: &str) -> Vec<String> {
    vec![
        "--label".to_string(),
        LABEL.to_string(),
        "--label".to_string(),
        format!("{PID_LABEL_KEY}={}", std::process::id()),
        "--label".to_string(),
        format!("{RUN_LABEL_KEY}={run_id}"),
    ]
}

/// Checks a name the harness puts into Docker names: lowercase letters, digits and `-`.
pub fn validate_part(kind: &str, name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-');
    if !valid {
        bail!("{kind} name `{name}` must be 1-32 of [a-z0-9-], not starting with `-`");
    }
    Ok(())
}

/// Checks a Unix account name (also used in a sudoers file name, so no dots).
pub fn validate_user(user: &str) -> Result<()> {
    let mut chars = user.chars();
    let valid = user.len() <= 32
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !valid {
        bail!("user name `{user}` must match ^[a-z_][a-z0-9_-]{{0,31}}$");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_id_is_stable_within_a_thread_and_differs_across_threads() -> Result<()> {
        let here = current_run_id();
        assert_eq!(here, current_run_id());
        let there = std::thread::spawn(current_run_id)
            .join()
            .map_err(|_| anyhow::anyhow!("thread panicked"))?;
        assert_ne!(here, there);
        Ok(())
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_part("site", "web-1").is_ok());
        assert!(validate_part("site", "Web").is_err());
        assert!(validate_part("site", "").is_err());
        assert!(validate_user("app1").is_ok());
        assert!(validate_user("_svc-2").is_ok());
        assert!(validate_user("1app").is_err());
        assert!(validate_user("a.b").is_err());
        assert!(validate_user("a;rm").is_err());
    }
}
