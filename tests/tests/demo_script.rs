//! Issue 21 item 1, "The README's first command runs the main job": `bash scripts/demo.sh
//! --no-wait` starts a dev controller and an agent, two Debian hosts in containers, rotates a
//! parent-managed and a self-managed password, proves each by an SSH login (the old one
//! refused), logs in to db-1 with a one-time password through `rotor ssh` and the agent as
//! its PAM helper, and removes everything it started. Runs the script as the README prints it,
//! with this build's binaries (`ROTOR_BIN_DIR`) so nothing is rebuilt.

mod demo_common;
mod support;

use std::time::Duration;

use anyhow::Result;
use demo_common::{DEMO_TIMEOUT, assert_cleaned_up, start_demo, text_after, this_checkout};
use rotor_tests::skip_requested;

#[test]
fn the_demo_rotates_and_proves_two_passwords_then_removes_what_it_started() -> Result<()> {
    if skip_requested("demo_script") {
        return Ok(());
    }
    let mut demo = start_demo(&this_checkout(), &["--no-wait"])?;
    let exit_code = match demo.wait_exit(DEMO_TIMEOUT) {
        Ok(code) => code,
        Err(error) => {
            // SIGTERM, not SIGKILL: the script's trap removes what it started.
            let _ = demo.signal("TERM");
            let _ = demo.wait_exit(Duration::from_secs(60));
            return Err(error.context("the demo did not finish"));
        }
    };
    let stdout = demo.stdout();
    let everything = format!("{stdout}\n--- stderr ---\n{}", demo.stderr());
    assert_eq!(exit_code, Some(0), "{everything}");

    for expected in [
        "login as app on web-1 with the new password (version 2): ok",
        "login as app on web-1 with the old password: refused",
        "login as svc on db-1 with the new password (version 2): ok",
        "login as svc on db-1 with the old password: refused",
        "login as svc on db-1 with a one-time password (rotor ssh -role otp_key_role): ok",
        "done: 2 passwords rotated and proved by SSH logins, and an OTP login",
        "export ROTOR_ADDR='https://127.0.0.1:",
        "export ROTOR_CACERT='",
        "export ROTOR_TOKEN='",
        "rotor rotation watch",
    ] {
        assert!(
            stdout.contains(expected),
            "no `{expected}` in:\n{everything}"
        );
    }
    let first_rotation = text_after(&stdout, "first password rotated ")?;
    assert!(
        first_rotation.ends_with(" s after the demo started"),
        "{first_rotation}"
    );

    assert_cleaned_up(&stdout)?;
    Ok(())
}
