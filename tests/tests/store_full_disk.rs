//! Issue 16, a store that survives a full disk: a configured controller keeps its store on a
//! small tmpfs; with the filesystem filled, writes fail saying "no space" (a rotation fails
//! before its candidate could be recorded, so nothing is sent), `sys/health` answers 503 with
//! the reason, and once space is freed writes work again and health is 200, without a restart.
//! Needs root (it mounts the tmpfs).

mod core_common;
mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use core_common::{curl, first_error, ok};
use serde_json::{Value, json};
use support::Controller;

const HOST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB5m6X3b1x9Qm9l5jF0yVQ0P0n7p7q8mY0cZ2b7e6a5d";

/// A tmpfs of `megabytes` mounted on a fresh directory, unmounted on drop.
struct SmallFilesystem {
    dir: tempfile::TempDir,
}

impl SmallFilesystem {
    fn mount(megabytes: u32) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={megabytes}m,mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .context("running mount")?;
        if !status.success() {
            bail!(
                "mounting a {megabytes} MiB tmpfs on {} failed: this test needs root (run the suite as root, as scripts/test.sh says)",
                dir.path().display()
            );
        }
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the filesystem with one file until the kernel says it is full.
    fn fill(&self) -> Result<PathBuf> {
        let filler = self.path().join("filler");
        let mut file = std::fs::File::create(&filler)?;
        let block = vec![0x5a_u8; 64 * 1024];
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) if error.raw_os_error() == Some(28) => break,
                Err(error) => return Err(error).context("filling the tmpfs"),
            }
        }
        // Leftover room smaller than a block: take it too.
        while let Ok(1) = file.write(&[0x5a]) {}
        Ok(filler)
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A policy document of about `bytes`, distinct per `name`.
fn big_policy(name: &str, bytes: usize) -> Value {
    let mut text = String::new();
    let mut index = 0;
    while text.len() < bytes {
        text.push_str(&format!(
            "path \"os/hosts/{name}-{index}/*\" {{ capabilities = [\"read\"] }}\n"
        ));
        index += 1;
    }
    json!({ "policy": text })
}

#[test]
fn a_full_disk_fails_writes_clearly_and_they_resume_when_space_is_freed() -> Result<()> {
    let filesystem = SmallFilesystem::mount(24)?;
    let (dir, config, token) = Controller::init_config()?;
    // The store moves onto the small filesystem; the seal key stays beside the config.
    let text = std::fs::read_to_string(&config)?;
    let old_store = format!("{}/rotor.redb", dir.path().display());
    let new_store = filesystem.path().join("rotor.redb");
    if !text.contains(&old_store) {
        bail!("the test config does not name {old_store}:\n{text}");
    }
    std::fs::copy(&old_store, &new_store).context("moving the store onto the tmpfs")?;
    std::fs::remove_file(&old_store)?;
    std::fs::write(
        &config,
        text.replace(&old_store, &new_store.display().to_string()),
    )?;
    let controller = Controller::start_config(dir, &config, &token)?;
    let root_token = controller.token.clone();
    let root = root_token.as_str();
    ok(
        &controller,
        "POST",
        "os/hosts/disk-1",
        root,
        Some(
            json!({"address": "127.0.0.1", "port": 1, "site": "nowhere", "ssh_host_key": HOST_KEY}),
        ),
    )?;
    ok(
        &controller,
        "POST",
        "os/hosts/disk-1/accounts/app",
        root,
        Some(json!({"username": "app", "password": "App-Secret-1", "verify_connection": false})),
    )?;
    let (status, _) = curl(&controller, "GET", "sys/health", None, None)?;
    assert_eq!(status, 200, "healthy before the disk fills");

    let filler = filesystem.fill()?;
    // redb may have free pages inside its file: write until a write needs the disk.
    let mut refusal = None;
    for attempt in 0..60 {
        let name = format!("fill-{attempt}");
        let (status, body) = curl(
            &controller,
            "PUT",
            &format!("sys/policies/acl/{name}"),
            Some(root),
            Some(&big_policy(&name, 100 * 1024)),
        )?;
        match status {
            200..=299 => continue,
            _ => {
                refusal = Some((status, first_error(&body)));
                break;
            }
        }
    }
    let (status, message) = refusal.context("60 large writes succeeded on a full disk")?;
    assert_eq!(
        status, 503,
        "a full disk is the server's trouble: {message}"
    );
    assert!(
        message.contains("no space") && message.contains("rotor.redb"),
        "the refusal says the store's disk is full: {message}"
    );

    // redb may still have free pages for a small write after the large one failed (a failed
    // write's pages can be free again once the store reopens): use them up with small writes,
    // so the next write of any size needs the disk. A rotation then cannot record its
    // candidate, so it fails before anything is sent. (Should a reopen free pages again, the
    // rotation's seal fits and it fails for want of an agent, also sending nothing: use those
    // pages up too and try again.)
    let mut rotation = None;
    for round in 0..5 {
        let mut small_refused = false;
        for attempt in 0..200 {
            let (status, _) = curl(
                &controller,
                "PUT",
                &format!("sys/policies/acl/small-{round}-{attempt}"),
                Some(root),
                Some(&json!({"policy": "path \"x/*\" { capabilities = [\"read\"] }"})),
            )?;
            if !(200..300).contains(&status) {
                small_refused = true;
                break;
            }
        }
        assert!(small_refused, "200 small writes succeeded on a full disk");
        let (status, body) = curl(
            &controller,
            "POST",
            "os/hosts/disk-1/accounts/app/rotate",
            Some(root),
            None,
        )?;
        if status == 503 {
            rotation = Some((status, body));
            break;
        }
        assert!(
            first_error(&body).contains("no enrolled agent"),
            "a rotation on a full disk sends nothing: {body}"
        );
    }
    let (status, body) = rotation.context("5 rotations recorded a candidate on a full disk")?;
    let message = first_error(&body);
    assert_eq!(status, 503, "rotate on a full disk: {body}");
    assert!(
        message.contains("no space"),
        "the rotation failed at the store, before any job: {message}"
    );

    let (status, body) = curl(&controller, "GET", "sys/health", None, None)?;
    assert_eq!(status, 503, "health while the store cannot write: {body}");
    assert!(
        body["store_error"]
            .as_str()
            .is_some_and(|error| error.contains("no space")),
        "health says why: {body}"
    );

    // Space freed: writes work again, without a restart.
    std::fs::remove_file(&filler)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = curl(
            &controller,
            "PUT",
            "sys/policies/acl/after",
            Some(root),
            Some(&json!({"policy": "path \"os/*\" { capabilities = [\"read\"] }"})),
        )?;
        if (200..300).contains(&status) {
            break;
        }
        if Instant::now() > deadline {
            bail!("writes did not resume after space was freed: {status} {body}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, body) = curl(&controller, "GET", "sys/health", None, None)?;
    assert_eq!(status, 200, "healthy again: {body}");
    // What was stored before the disk filled is intact, and no candidate is pending.
    let account = ok(
        &controller,
        "GET",
        "os/hosts/disk-1/accounts/app",
        root,
        None,
    )?;
    assert_eq!(account["data"]["current_version"], 1, "{account}");
    let creds = ok(
        &controller,
        "GET",
        "os/hosts/disk-1/accounts/app/creds",
        root,
        None,
    )?;
    assert_eq!(creds["data"]["password"], "App-Secret-1");
    Ok(())
}
