//! SSH OTP, end to end: real sshd with PAM running `rotor-agent otp-verify` through
//! `pam_exec expose_authtok` (the `sufficient` stack), the controller in another container.
//!
//! Proves: a fresh OTP logs in once and never again; an OTP for another user, for another
//! host's address, for a locked account, for an unknown user, expired or revoked is
//! refused; twenty concurrent logins with twenty OTPs succeed exactly once each; an OTP
//! issued for one host never opens another host that has its own helper; with the
//! controller stopped OTPs are refused while the account's own password still works; and
//! `otp-verify --check` reports the stack.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rotor_tests::otp_helper::{HELPER_DIR, install_otp_helper};
use rotor_tests::prelude::*;
use serde_json::Value;

/// `ssh/creds/ROLE` for `ip` and `user`: (otp, lease id).
fn otp(rotor: &Rotor, role: &str, ip: &str, user: &str) -> Result<(String, String)> {
    let answer = rotor.cli_json(&[
        "write",
        &format!("ssh/creds/{role}"),
        &format!("ip={ip}"),
        &format!("username={user}"),
    ])?;
    let key = answer["data"]["key"]
        .as_str()
        .context("creds without key")?;
    let lease = answer["lease_id"]
        .as_str()
        .context("creds without lease_id")?;
    assert_eq!(answer["data"]["key_type"], "otp", "{answer}");
    assert!(
        answer["lease_duration"].as_u64().unwrap_or(0) > 0,
        "{answer}"
    );
    Ok((key.to_string(), lease.to_string()))
}

fn refused(host: &Host, user: &str, password: &str, why: &str) {
    match host.login(user, password) {
        Ok(()) => panic!("{why}: the login as {user} on {} succeeded", host.name()),
        Err(error) => assert!(
            error.failure().is_wrong_password(),
            "{why}: expected a refused password, got {error}"
        ),
    }
}

fn another_address_in(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{a}.{b}.{c}.{}", if d == 250 { 251 } else { 250 })
        }
        IpAddr::V6(_) => "fd00::250".to_string(),
    }
}

#[test]
fn one_time_passwords_through_the_agent_helper() -> Result<()> {
    if skip_requested("one_time_passwords_through_the_agent_helper") {
        return Ok(());
    }
    let site = Site::new("otp")?;
    let host = site
        .host("otp-1")
        .with_user("app1", "App1-static-1")
        .with_user("app2", "App2-static-1")
        .start()?;
    let other = site
        .host("otp-2")
        .with_user("app1", "Other-static-1")
        .start()?;
    let rotor = Rotor::start(&[&site])?;
    let agent = install_otp_helper(&rotor, &host, "otp-hosts")?;
    let other_agent = install_otp_helper(&rotor, &other, "otp-hosts")?;
    assert_ne!(agent, other_agent);

    let ip = host.address()?;
    let other_ip = other.address()?;
    let subnet = match ip {
        IpAddr::V4(v4) => {
            let [a, b, _, _] = v4.octets();
            format!("{a}.{b}.0.0/16")
        }
        IpAddr::V6(_) => "::/0".to_string(),
    };
    rotor.cli(&[
        "write",
        "ssh/roles/hosts",
        "key_type=otp",
        "default_user=app1",
        "allowed_users=app1,app2",
        &format!("cidr_list={subnet}"),
    ])?;
    rotor.cli(&[
        "write",
        "ssh/roles/short",
        "key_type=otp",
        "default_user=app1",
        &format!("cidr_list={subnet}"),
        "ttl=2s",
    ])?;
    let ip = ip.to_string();

    // The role's rules, before any login.
    let lookup = rotor.cli_json(&["write", "ssh/lookup", &format!("ip={ip}")])?;
    let roles: Vec<&str> = lookup["data"]["roles"]
        .as_array()
        .context("lookup without roles")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(roles, ["hosts", "short"], "{lookup}");
    let outside = rotor
        .controller()
        .cli_output(&["write", "ssh/creds/hosts", "ip=192.0.2.7"])?;
    assert!(
        !outside.success() && outside.stderr.contains("not covered"),
        "{}",
        outside.stderr
    );
    let not_allowed = rotor.controller().cli_output(&[
        "write",
        "ssh/creds/short",
        &format!("ip={ip}"),
        "username=app2",
    ])?;
    assert!(
        !not_allowed.success() && not_allowed.stderr.contains("not allowed"),
        "{}",
        not_allowed.stderr
    );

    // The static password still works: the stack is `sufficient`. The helper refuses it
    // locally (it is not shaped like an OTP): the password never travels to the controller,
    // which logs every OTP check it answers.
    let checks_before = rotor.controller_logs()?.matches("OTP verification").count();
    assert_password(&host, "app1", "App1-static-1");
    let checks_after = rotor.controller_logs()?.matches("OTP verification").count();
    assert_eq!(
        checks_after, checks_before,
        "a password login through the helper reached the controller"
    );

    // A fresh OTP logs in once; the same OTP again is refused.
    let (first, _) = otp(&rotor, "hosts", &ip, "app1")?;
    host.login("app1", &first)
        .map_err(|error| anyhow::anyhow!("a fresh OTP must log in: {error}"))?;
    refused(&host, "app1", &first, "the same OTP a second time");
    // The control for the check above: OTPs do reach the controller, which logs each.
    let otp_checks = rotor.controller_logs()?.matches("OTP verification").count();
    assert!(
        otp_checks >= checks_after + 2,
        "two OTP logins left {} OTP verification lines (was {checks_after})",
        otp_checks
    );

    // The address is now bound to this host's agent.
    let binding = rotor.cli_json(&["read", &format!("ssh/config/otp_bindings/{ip}")])?;
    assert_eq!(binding["data"]["agent"], agent.as_str(), "{binding}");

    // An OTP for app2 presented as app1.
    let (for_app2, _) = otp(&rotor, "hosts", &ip, "app2")?;
    refused(&host, "app1", &for_app2, "an OTP issued for another user");
    // An OTP for another address of the subnet, presented here.
    let (elsewhere, _) = otp(
        &rotor,
        "hosts",
        &another_address_in(host.address()?),
        "app1",
    )?;
    refused(
        &host,
        "app1",
        &elsewhere,
        "an OTP issued for another address",
    );
    // An OTP for this host presented at another host with its own helper.
    let (for_this_host, _) = otp(&rotor, "hosts", &ip, "app1")?;
    refused(
        &other,
        "app1",
        &for_this_host,
        "an OTP for otp-1 presented at otp-2",
    );
    // ...and it was burnt there: it no longer opens otp-1 either.
    refused(
        &host,
        "app1",
        &for_this_host,
        "an OTP already presented elsewhere",
    );
    // The other host's own OTPs work there.
    let (theirs, _) = otp(&rotor, "hosts", &other_ip.to_string(), "app1")?;
    other
        .login("app1", &theirs)
        .map_err(|error| anyhow::anyhow!("otp-2's own OTP must log in there: {error}"))?;

    // Expired.
    let (short, _) = otp(&rotor, "short", &ip, "app1")?;
    std::thread::sleep(Duration::from_secs(4));
    refused(&host, "app1", &short, "an expired OTP");
    // Revoked with its lease.
    let (revoked, lease) = otp(&rotor, "hosts", &ip, "app1")?;
    rotor.cli(&["write", "sys/leases/revoke", &format!("lease_id={lease}")])?;
    refused(&host, "app1", &revoked, "an OTP whose lease was revoked");
    // A locked account, even with a valid OTP for it.
    host.exec("passwd -l app2 >/dev/null")?;
    let (locked, _) = otp(&rotor, "hosts", &ip, "app2")?;
    refused(&host, "app2", &locked, "an OTP for a locked account");
    host.exec("passwd -u app2 >/dev/null")?;
    // An unknown user gets sshd's decoy, never an OTP check.
    let (for_unknown, _) = otp(&rotor, "hosts", &ip, "app1")?;
    refused(&host, "nosuchuser", &for_unknown, "an unknown user");

    // Twenty concurrent logins with twenty OTPs: each succeeds exactly once.
    let otps: Vec<String> = (0..20)
        .map(|_| otp(&rotor, "hosts", &ip, "app1").map(|(key, _)| key))
        .collect::<Result<_>>()?;
    let started = Instant::now();
    let outcomes: Vec<Result<(), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = otps
            .iter()
            .map(|key| scope.spawn(|| host.login("app1", key).map_err(|e| e.to_string())))
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err("thread panicked".into()))
            })
            .collect()
    });
    let failures: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "concurrent OTP logins failed: {failures:?}"
    );
    eprintln!("20 concurrent OTP logins took {:?}", started.elapsed());
    let again: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = otps
            .iter()
            .map(|key| scope.spawn(|| host.login("app1", key).is_ok()))
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap_or(true))
            .collect()
    });
    assert!(
        again.iter().all(|ok| !ok),
        "an OTP logged in twice: {again:?}"
    );

    // `rotor ssh` asks for an OTP and logs in through sshpass; here from the controller's
    // container over the core network, a second address of the same host, which only a
    // zero-address role covers.
    rotor.cli(&[
        "write",
        "ssh/roles/anywhere",
        "key_type=otp",
        "default_user=app1",
        "cidr_list=192.0.2.0/24",
    ])?;
    rotor.cli(&["write", "ssh/config/zeroaddress", "roles=anywhere"])?;
    let zero = rotor.cli_json(&["read", "ssh/config/zeroaddress"])?;
    assert_eq!(zero["data"]["roles"][0], "anywhere", "{zero}");
    let core_ip = host.container().address_on(rotor.core())?;
    let via_cli = rotor.controller().cli_output(&[
        "ssh",
        "-role",
        "anywhere",
        &format!("app1@{core_ip}"),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "--",
        "id",
        "-un",
    ])?;
    assert!(
        via_cli.success() && via_cli.stdout.contains("app1"),
        "rotor ssh: {}{}",
        via_cli.stdout,
        via_cli.stderr
    );

    // The HTTP verify of the reference consumes too.
    let (by_http, _) = otp(&rotor, "hosts", &ip, "app2")?;
    let verified = rotor.cli_json(&["write", "ssh/verify", &format!("otp={by_http}")])?;
    assert_eq!(verified["data"]["username"], "app2", "{verified}");
    assert_eq!(verified["data"]["ip"], ip.as_str(), "{verified}");
    let second =
        rotor
            .controller()
            .cli_output(&["write", "ssh/verify", &format!("otp={by_http}")])?;
    assert!(
        !second.success() && second.stderr.contains("OTP not found"),
        "{}",
        second.stderr
    );
    refused(&host, "app2", &by_http, "an OTP consumed by ssh/verify");

    // --check reports the identity, the controller and the stack.
    let check = host.container().exec_program(
        &["rotor-agent", "otp-verify", "--check", "--dir", HELPER_DIR],
        &[],
        None,
        Duration::from_secs(30),
    )?;
    assert!(
        check.success(),
        "--check failed: {}{}",
        check.stdout,
        check.stderr
    );
    assert!(check.stdout.contains(&agent), "{}", check.stdout);
    assert!(check.stdout.contains("sufficient"), "{}", check.stdout);

    // The controller stopped: OTPs are refused (fail closed), passwords still work.
    let (pending, _) = otp(&rotor, "hosts", &ip, "app1")?;
    rotor.kill_controller()?;
    let before = Instant::now();
    refused(
        &host,
        "app1",
        &pending,
        "an OTP while the controller is down",
    );
    assert!(
        before.elapsed() < Duration::from_secs(30),
        "the helper must bound its wait; the refused login took {:?}",
        before.elapsed()
    );
    assert_password(&host, "app1", "App1-static-1");

    // No OTP in the auth log or the controller's log.
    let log = rotor.controller_logs()?;
    for key in otps.iter().chain([&first, &pending, &by_http]) {
        assert!(
            !log.contains(key.as_str()),
            "an OTP reached the controller's log"
        );
    }
    Ok(())
}
