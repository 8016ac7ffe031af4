//! Sweeps Docker resources left behind by test processes that died before their
//! `Drop`s ran (SIGKILL, abort). Only removes resources labelled `rotor-test=1` whose
//! `rotor-test.pid` is no longer a live process, so parallel test processes are safe.
//! Normal cleanup is the owners' `Drop`, not this. `tests/image/cleanup.sh` is the
//! same sweep for a shell.

use std::path::Path;
use std::sync::Once;

use anyhow::Result;

use crate::docker::docker;
use crate::naming::{LABEL, PID_LABEL_KEY};

/// Runs [`sweep_leftovers_of_dead_processes`] once per test process, reporting (not
/// failing on) errors.
pub fn sweep_once() {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(|| {
        if let Err(error) = sweep_leftovers_of_dead_processes() {
            eprintln!("rotor-tests: sweeping stale test resources failed: {error:#}");
        }
    });
}

/// Removes containers, then networks, then volumes whose owning test process is gone.
/// Returns the names removed.
pub fn sweep_leftovers_of_dead_processes() -> Result<Vec<String>> {
    let mut removed = Vec::new();
    // Containers first: a network or volume in use cannot be removed.
    let kinds: [(&[&str], &str, &[&str]); 3] = [
        (&["ps", "-a"], "{{.Names}}", &["rm", "-f", "-v"]),
        (&["network", "ls"], "{{.Name}}", &["network", "rm"]),
        (&["volume", "ls"], "{{.Name}}", &["volume", "rm", "-f"]),
    ];
    let filter = format!("label={LABEL}");
    for (list, name_field, remove) in kinds {
        let format = format!("{name_field} {{{{.Label \"{PID_LABEL_KEY}\"}}}}");
        let mut args = list.to_vec();
        args.extend(["--filter", &filter, "--format", &format]);
        for line in docker(&args)?.lines() {
            let mut fields = line.split_whitespace();
            let (Some(name), pid) = (fields.next(), fields.next()) else {
                continue;
            };
            if pid.is_some_and(process_is_alive) {
                continue;
            }
            let mut remove_args = remove.to_vec();
            remove_args.push(name);
            match docker(&remove_args) {
                Ok(_) => removed.push(name.to_string()),
                Err(error) => eprintln!("rotor-tests: could not remove stale {name}: {error:#}"),
            }
        }
    }
    Ok(removed)
}

fn process_is_alive(pid: &str) -> bool {
    pid.parse::<u32>().is_ok() && Path::new("/proc").join(pid).exists()
}
