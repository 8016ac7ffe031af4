//! Scenario: every host has its own host keys, reported as `ssh-keygen -lf` and
//! OpenSSH public-key lines; regenerating them changes the fingerprint and sshd serves
//! the new key. Owns only this scenario; no Rotor processes.

use anyhow::Result;
use rotor_tests::prelude::*;

#[test]
fn host_keys_are_per_host_and_can_be_regenerated() -> Result<()> {
    if skip_requested("harness_host_keys") {
        return Ok(());
    }
    let site = Site::new("a")?;
    let first = site.host("web-1").with_user("app1", "app1-pw").start()?;
    let second = site.host("web-2").start()?;

    let fingerprint = first.host_key_fingerprint()?;
    assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");
    assert_ne!(
        fingerprint,
        second.host_key_fingerprint()?,
        "hosts share host keys"
    );

    let public_key = first.host_public_key("ed25519")?;
    assert!(public_key.starts_with("ssh-ed25519 AAAA"), "{public_key}");
    assert_eq!(public_key.split(' ').count(), 2, "{public_key}");
    assert!(first.host_public_key("rsa")?.starts_with("ssh-rsa AAAA"));

    // What sshd actually serves, scanned from the other host.
    let address = first.address()?;
    let scan = |host: &Host| host.exec(&format!("ssh-keyscan -t ed25519 {address} 2>/dev/null"));
    assert!(scan(&second)?.contains(public_key.trim_start_matches("ssh-ed25519 ")));

    first.regenerate_host_keys()?;
    let new_fingerprint = first.host_key_fingerprint()?;
    assert_ne!(
        new_fingerprint, fingerprint,
        "regenerating kept the old key"
    );
    let new_public_key = first.host_public_key("ed25519")?;
    assert!(scan(&second)?.contains(new_public_key.trim_start_matches("ssh-ed25519 ")));
    assert_password(&first, "app1", "app1-pw");
    Ok(())
}
