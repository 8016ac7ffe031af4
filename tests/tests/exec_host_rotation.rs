//! End-to-end scenarios for the agent's host-execution layer (`rotor_agent::exec`) against
//! real Debian 12 hosts: containers of the `rotor-host:*` image (tests/image/build-image.sh),
//! reached over the docker bridge. Every change is proven by logging in over SSH, with russh
//! (`try_login`) and with OpenSSH (`sshpass` + `ssh` inside the container), never by reading
//! Rotor's own answers back.
//!
//! Owns only its throwaway containers (one per scenario, removed on drop, also on a panic).
//! Needs Docker and the image; without them each scenario fails saying so, unless
//! `ROTOR_E2E=skip` opts out explicitly.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rotor_agent::exec::{
    AccountOutcome, BeforeChangeReason, ExecError, HostConnection, HostKeyPolicy, HostTarget,
    LoginCheck, Password, change_passwords_locally,
};

/// The parent account's sudo rule, exactly as an operator would write it.
const SUDO_RULE: &str = "mgmt ALL=(root) NOPASSWD: /usr/sbin/chpasswd";
const CHPASSWD: &str = "/usr/sbin/chpasswd";
/// Set inside the container when this test binary is run there by the local scenario.
const INSIDE_VARIABLE: &str = "ROTOR_EXEC_LOCAL_INSIDE";

fn skip_requested() -> bool {
    std::env::var("ROTOR_E2E").is_ok_and(|value| value == "skip")
}

/// A password unlike any other (wide alphabet, so Debian's similarity checks pass).
fn fresh_password(label: &str) -> Password {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789-_+=";
    let body: String = (0..18)
        .map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())]))
        .collect();
    Password::new(format!("{label}.{body}"))
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|error| panic!("could not run {command:?}: {error}"))
}

fn docker(args: &[&str]) -> Output {
    run(Command::new("docker").args(args))
}

/// The newest `rotor-host:*` image, or a panic that says how to get one.
fn host_image() -> String {
    if let Ok(image) = std::env::var("ROTOR_HOST_IMAGE") {
        return image;
    }
    let output = Command::new("docker")
        .args([
            "images",
            "rotor-host",
            "--format",
            "{{.Repository}}:{{.Tag}}",
        ])
        .output()
        .unwrap_or_else(|error| {
            panic!("the docker CLI is needed for this test ({error}); set ROTOR_E2E=skip to skip")
        });
    assert!(
        output.status.success(),
        "docker is not usable: {}; set ROTOR_E2E=skip to skip",
        String::from_utf8_lossy(&output.stderr)
    );
    let listing = String::from_utf8_lossy(&output.stdout).into_owned();
    match listing.lines().find(|line| !line.ends_with(":<none>")) {
        Some(image) => image.to_owned(),
        None => panic!(
            "no rotor-host image: build it with tests/image/build-image.sh (or set ROTOR_HOST_IMAGE); \
             set ROTOR_E2E=skip to skip"
        ),
    }
}

/// One throwaway Debian host running sshd; removed when dropped.
struct TestHost {
    container: String,
    ip: String,
}

impl TestHost {
    fn start(scenario: &str) -> TestHost {
        let image = host_image();
        let container = format!(
            "rotor-exec-{scenario}-{}-{:06x}",
            std::process::id(),
            rand::random_range(0..0xff_ffff_u32)
        );
        let started = docker(&[
            "run",
            "-d",
            "--rm",
            "--label",
            "rotor-exec-test=1",
            "--name",
            &container,
            &image,
        ]);
        assert!(
            started.status.success(),
            "docker run {image} failed: {}",
            String::from_utf8_lossy(&started.stderr)
        );
        // From here on, Drop removes the container whatever happens.
        let mut host = TestHost {
            container,
            ip: String::new(),
        };
        let inspect = docker(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
            &host.container,
        ]);
        host.ip = String::from_utf8_lossy(&inspect.stdout)
            .split_whitespace()
            .next()
            .unwrap_or_else(|| panic!("container {} has no IP address", host.container))
            .to_owned();
        host.wait_for_sshd();
        host
    }

    fn wait_for_sshd(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.sh_status("cat /var/log/sshd.log 2>/dev/null");
            let address: std::net::SocketAddr = format!("{}:22", self.ip)
                .parse()
                .unwrap_or_else(|error| panic!("bad container address {}: {error}", self.ip));
            if log.contains("Server listening")
                && std::net::TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "sshd in {} did not start within 30 s; its log: {log}",
                self.container
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs a bash script in the container, asserting that it succeeds; returns stdout.
    fn sh(&self, script: &str) -> String {
        self.sh_with_stdin(script, "")
    }

    /// Runs a bash script and returns stdout whatever its status.
    fn sh_status(&self, script: &str) -> String {
        let output = docker(&["exec", &self.container, "bash", "-c", script]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs a bash script with `stdin` (where secrets go: never on a command line).
    fn sh_with_stdin(&self, script: &str, stdin: &str) -> String {
        let output = self.exec_with_stdin(&["bash", "-c", script], &[], stdin);
        assert!(
            output.status.success(),
            "in {}: `{script}` failed: {}",
            self.container,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn exec_with_stdin(&self, command: &[&str], env: &[&str], stdin: &str) -> Output {
        let mut docker = Command::new("docker");
        docker.args(["exec", "-i"]);
        for variable in env {
            docker.args(["-e", variable]);
        }
        docker.arg(&self.container).args(command);
        let mut child = docker
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("could not run docker exec: {error}"));
        if let Some(mut input) = child.stdin.take() {
            input
                .write_all(stdin.as_bytes())
                .unwrap_or_else(|error| panic!("writing to docker exec: {error}"));
        }
        child
            .wait_with_output()
            .unwrap_or_else(|error| panic!("waiting for docker exec: {error}"))
    }

    /// Creates accounts (bash as shell) and sets their passwords through chpasswd's stdin.
    fn add_users(&self, accounts: &[(&str, &Password)]) {
        for (user, _) in accounts {
            self.sh(&format!("useradd -m -s /bin/bash {user}"));
        }
        self.set_passwords(accounts);
    }

    fn set_passwords(&self, accounts: &[(&str, &Password)]) {
        let lines: String = accounts
            .iter()
            .map(|(user, password)| format!("{user}:{}\n", password.expose()))
            .collect();
        self.sh_with_stdin("chpasswd", &lines);
    }

    fn allow_sudo_chpasswd(&self) {
        self.sh(&format!(
            "echo '{SUDO_RULE}' > /etc/sudoers.d/mgmt && chmod 0440 /etc/sudoers.d/mgmt && visudo -cq"
        ));
    }

    /// Logs in with OpenSSH from inside the container; the password goes on stdin.
    fn openssh_login(&self, user: &str, password: &Password) -> bool {
        let script = "IFS= read -r SSHPASS; export SSHPASS; exec sshpass -e ssh \
            -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
            -o PubkeyAuthentication=no -o LogLevel=ERROR -o ConnectTimeout=10 \
            -o NumberOfPasswordPrompts=1 \"$1\"@127.0.0.1 true";
        let output = self.exec_with_stdin(
            &["bash", "-c", script, "openssh-login", user],
            &[],
            &format!("{}\n", password.expose()),
        );
        match output.status.code() {
            Some(0) => true,
            // sshpass: 5 = password refused; ssh: 255 with "Permission denied".
            Some(5) => false,
            Some(255) if String::from_utf8_lossy(&output.stderr).contains("Permission denied") => {
                false
            }
            other => panic!(
                "OpenSSH login as {user} could not be judged (status {other:?}): {}",
                String::from_utf8_lossy(&output.stderr)
            ),
        }
    }

    fn sshd_log(&self) -> String {
        self.sh("cat /var/log/sshd.log")
    }

    /// This container's host public key of `kind` (ed25519, rsa, ecdsa), without comment.
    fn host_key(&self, kind: &str) -> String {
        let line = self.sh(&format!("cat /etc/ssh/ssh_host_{kind}_key.pub"));
        line.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn host_key_fingerprint(&self, kind: &str) -> String {
        let line = self.sh(&format!("ssh-keygen -lf /etc/ssh/ssh_host_{kind}_key.pub"));
        line.split_whitespace()
            .nth(1)
            .unwrap_or_else(|| panic!("unexpected ssh-keygen output: {line}"))
            .to_owned()
    }

    fn target(&self, host_key: HostKeyPolicy) -> HostTarget {
        let mut target = HostTarget::new(format!("test-{}", self.container), self.ip.clone());
        target.host_key = host_key;
        target.connect_timeout = Duration::from_secs(15);
        target.step_timeout = Duration::from_secs(20);
        target
    }

    fn pinned_target(&self) -> HostTarget {
        self.target(HostKeyPolicy::Pinned(self.host_key("ed25519")))
    }

    /// Restarts sshd (host-init keeps running without it) and waits until it listens.
    fn restart_sshd(&self) {
        self.sh(
            "pkill -x sshd; for i in $(seq 50); do pgrep -x sshd >/dev/null || break; sleep 0.1; done; \
             : > /var/log/sshd.log; /usr/sbin/sshd -E /var/log/sshd.log",
        );
        self.wait_for_sshd();
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.container])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

async fn russh_login(target: &HostTarget, user: &str, password: &Password) -> LoginCheck {
    HostConnection::try_login(target, user, password)
        .await
        .unwrap_or_else(|error| panic!("login check as {user} could not be made: {error}"))
}

/// Proves with both clients that `user` logs in with `good` and not with `bad`.
async fn assert_password_is(
    host: &TestHost,
    target: &HostTarget,
    user: &str,
    good: &Password,
    bad: &Password,
) {
    assert_eq!(
        russh_login(target, user, good).await,
        LoginCheck::Accepted,
        "{user}: russh, expected password"
    );
    assert_eq!(
        russh_login(target, user, bad).await,
        LoginCheck::Rejected,
        "{user}: russh, other password"
    );
    assert!(
        host.openssh_login(user, good),
        "{user}: OpenSSH refused the expected password"
    );
    assert!(
        !host.openssh_login(user, bad),
        "{user}: OpenSSH accepted the other password"
    );
}

fn reason_of(error: &ExecError) -> &BeforeChangeReason {
    match error {
        ExecError::BeforeChange { reason, .. } => reason,
        other => panic!("expected a BeforeChange error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parent_rotates_ten_accounts_with_one_sudo_chpasswd() {
    if skip_requested() {
        eprintln!("ROTOR_E2E=skip: not run");
        return;
    }
    let host = TestHost::start("batch");
    let parent_password = fresh_password("mgmt");
    let users: Vec<String> = (1..=10).map(|index| format!("app{index}")).collect();
    let old: Vec<Password> = users.iter().map(|_| fresh_password("old")).collect();
    let new: Vec<Password> = users.iter().map(|_| fresh_password("new")).collect();
    let mut accounts: Vec<(&str, &Password)> = vec![("mgmt", &parent_password)];
    accounts.extend(users.iter().map(String::as_str).zip(old.iter()));
    host.add_users(&accounts);
    host.allow_sudo_chpasswd();
    let target = host.pinned_target();

    let started = Instant::now();
    let (mut connection, seen) = HostConnection::connect(&target, "mgmt", &parent_password)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let connected = started.elapsed();
    assert_eq!(seen.openssh, host.host_key("ed25519"));
    let changes: Vec<(String, Password)> = users.iter().cloned().zip(new.iter().cloned()).collect();
    connection
        .change_passwords_with_sudo(CHPASSWD, &changes)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let rotated = started.elapsed();
    connection.close().await;
    eprintln!(
        "timing: connect+auth {connected:?}, connect+auth+sudo chpasswd of 10 accounts {rotated:?}"
    );

    // Every account: the new password logs in, the old one does not (checked concurrently:
    // each refusal costs PAM's delay).
    let mut checks = tokio::task::JoinSet::new();
    for ((user, old), new) in users.iter().zip(&old).zip(&new) {
        let (target, user, old, new) = (target.clone(), user.clone(), old.clone(), new.clone());
        checks.spawn(async move {
            assert_eq!(
                russh_login(&target, &user, &new).await,
                LoginCheck::Accepted,
                "{user} new"
            );
            assert_eq!(
                russh_login(&target, &user, &old).await,
                LoginCheck::Rejected,
                "{user} old"
            );
        });
    }
    while let Some(joined) = checks.join_next().await {
        joined.unwrap_or_else(|error| panic!("a login check failed: {error}"));
    }
    std::thread::scope(|scope| {
        for ((user, old), new) in users.iter().zip(&old).zip(&new) {
            let host = &host;
            scope.spawn(move || {
                assert!(
                    host.openssh_login(user, new),
                    "{user}: OpenSSH refused the new password"
                );
                assert!(
                    !host.openssh_login(user, old),
                    "{user}: OpenSSH accepted the old password"
                );
            });
        }
    });

    // One SSH session for the parent did the whole batch.
    let log = host.sshd_log();
    let parent_logins = log.matches("Accepted password for mgmt ").count();
    assert_eq!(
        parent_logins, 1,
        "expected one login of mgmt, sshd log:\n{log}"
    );

    // A batch with an account the host lacks: the others change, the missing one is named.
    let (mut connection, _) = HostConnection::connect(&target, "mgmt", &parent_password)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let newer = fresh_password("newer");
    let error = connection
        .change_passwords_with_sudo(
            CHPASSWD,
            &[
                ("app1".to_owned(), newer.clone()),
                ("ghost".to_owned(), fresh_password("ghost")),
            ],
        )
        .await
        .expect_err("ghost does not exist");
    connection.close().await;
    assert_eq!(
        error.outcome_for("app1"),
        AccountOutcome::Changed,
        "{error}"
    );
    assert_eq!(
        error.outcome_for("ghost"),
        AccountOutcome::Unchanged,
        "{error}"
    );
    let ExecError::PartlyChanged { unchanged, .. } = &error else {
        panic!("expected PartlyChanged, got {error:?}");
    };
    assert_eq!(
        unchanged[0].reason,
        BeforeChangeReason::UnknownUser {
            user: "ghost".to_owned()
        }
    );
    assert_password_is(&host, &target, "app1", &newer, &new[0]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parent_refusals_change_nothing() {
    if skip_requested() {
        eprintln!("ROTOR_E2E=skip: not run");
        return;
    }
    let host = TestHost::start("refusals");
    let parent_password = fresh_password("mgmt");
    let helper_password = fresh_password("helper");
    let app_password = fresh_password("app");
    host.add_users(&[
        ("mgmt", &parent_password),
        ("helper", &helper_password),
        ("app1", &app_password),
    ]);
    host.allow_sudo_chpasswd();
    let target = host.pinned_target();
    let candidate = fresh_password("candidate");
    let changes = [("app1".to_owned(), candidate.clone())];

    // Wrong parent password.
    let error = match HostConnection::connect(&target, "mgmt", &fresh_password("wrong")).await {
        Err(error) => error,
        Ok(_) => panic!("a wrong parent password logged in"),
    };
    assert_eq!(
        reason_of(&error),
        &BeforeChangeReason::AuthenticationFailed {
            user: "mgmt".to_owned()
        }
    );
    assert!(error.to_string().contains(&host.ip), "{error}");

    // An account without a sudo rule.
    let (mut connection, _) = HostConnection::connect(&target, "helper", &helper_password)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let error = connection
        .change_passwords_with_sudo(CHPASSWD, &changes)
        .await
        .expect_err("helper has no sudo rule");
    connection.close().await;
    assert!(
        matches!(reason_of(&error), BeforeChangeReason::SudoRefused { user, .. } if user == "helper"),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains(SUDO_RULE.replace("mgmt", "helper").as_str()),
        "{error}"
    );

    // A password that cannot travel as one line is refused before anything is sent.
    let (mut connection, _) = HostConnection::connect(&target, "mgmt", &parent_password)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let error = connection
        .change_passwords_with_sudo(
            CHPASSWD,
            &[("app1".to_owned(), Password::new("evil\nroot:owned"))],
        )
        .await
        .expect_err("newline refused");
    connection.close().await;
    assert!(matches!(
        reason_of(&error),
        BeforeChangeReason::UnsendablePassword { .. }
    ));
    assert!(!error.to_string().contains("evil") && !format!("{error:?}").contains("evil"));

    assert_password_is(&host, &target, "app1", &app_password, &candidate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_changes_its_own_password_with_passwd() {
    if skip_requested() {
        eprintln!("ROTOR_E2E=skip: not run");
        return;
    }
    let host = TestHost::start("passwd");
    let first = fresh_password("first");
    host.add_users(&[("app1", &first)]);
    let target = host.pinned_target();

    // Success.
    let second = fresh_password("second");
    let started = Instant::now();
    let (mut connection, _) = HostConnection::connect(&target, "app1", &first)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    connection
        .change_own_password_with_passwd("app1", &first, &second)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    eprintln!("timing: connect+auth+passwd dialog {:?}", started.elapsed());
    connection.close().await;
    assert_password_is(&host, &target, "app1", &second, &first).await;

    // Wrong current password: certain, nothing changed.
    let (mut connection, _) = HostConnection::connect(&target, "app1", &second)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let wrong = fresh_password("wrong");
    let third = fresh_password("third");
    let error = connection
        .change_own_password_with_passwd("app1", &wrong, &third)
        .await
        .expect_err("wrong current password");
    assert_eq!(
        reason_of(&error),
        &BeforeChangeReason::CurrentPasswordRejected {
            user: "app1".to_owned()
        }
    );

    // Too short: passwd asks again, we stop; nothing changed. Same connection.
    let short = Password::new("ab");
    let error = connection
        .change_own_password_with_passwd("app1", &second, &short)
        .await
        .expect_err("too short");
    connection.close().await;
    match reason_of(&error) {
        BeforeChangeReason::NewPasswordRejected { user, message } => {
            assert_eq!(user, "app1");
            assert!(message.contains("longer password"), "{message}");
        }
        other => panic!("expected NewPasswordRejected, got {other:?}"),
    }
    assert!(!error.to_string().contains(second.expose()), "{error}");
    assert_password_is(&host, &target, "app1", &second, &third).await;
    assert_password_is(&host, &target, "app1", &second, &short).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_keys_are_checked_before_any_credential() {
    if skip_requested() {
        eprintln!("ROTOR_E2E=skip: not run");
        return;
    }
    let host = TestHost::start("hostkey");
    let parent_password = fresh_password("mgmt");
    let app_password = fresh_password("app");
    host.add_users(&[("mgmt", &parent_password), ("app1", &app_password)]);
    host.allow_sudo_chpasswd();
    let offered_fingerprint = host.host_key_fingerprint("ed25519");

    // Pinned to another host's key: refused with both fingerprints, no login attempted.
    let foreign = host.sh(
        "ssh-keygen -q -t ed25519 -N '' -f /tmp/foreign >/dev/null && cut -d' ' -f1,2 /tmp/foreign.pub",
    );
    let foreign_fingerprint = host.sh("ssh-keygen -lf /tmp/foreign.pub | cut -d' ' -f2");
    let mismatched = host.target(HostKeyPolicy::Pinned(foreign.trim().to_owned()));
    let error = match HostConnection::connect(&mismatched, "mgmt", &parent_password).await {
        Err(error) => error,
        Ok(_) => panic!("connected despite a host key mismatch"),
    };
    assert_eq!(
        reason_of(&error),
        &BeforeChangeReason::HostKeyMismatch {
            expected: foreign_fingerprint.trim().to_owned(),
            offered: offered_fingerprint.clone(),
        }
    );
    let text = error.to_string();
    assert!(
        text.contains(foreign_fingerprint.trim()) && text.contains(&offered_fingerprint),
        "{text}"
    );
    let log = host.sshd_log();
    assert!(
        !log.contains("for mgmt") && !log.contains("user mgmt"),
        "a credential reached sshd despite the mismatch:\n{log}"
    );

    // No key and TOFU off: refused, naming the offered key.
    let error = match HostConnection::connect(
        &host.target(HostKeyPolicy::Reject),
        "mgmt",
        &parent_password,
    )
    .await
    {
        Err(error) => error,
        Ok(_) => panic!("connected without any accepted host key"),
    };
    assert!(
        matches!(reason_of(&error), BeforeChangeReason::HostKeyUnknown { offered } if *offered == offered_fingerprint),
        "{error}"
    );

    // Trust on first use: accepted, and the offered key is returned for recording.
    let tofu = host.target(HostKeyPolicy::TrustOnFirstUse { known: None });
    let (connection, seen) = HostConnection::connect(&tofu, "mgmt", &parent_password)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    connection.close().await;
    assert_eq!(seen.openssh, host.host_key("ed25519"));
    assert_eq!(seen.fingerprint, offered_fingerprint);
    // ... and the recorded key is then enforced.
    let recorded = host.target(HostKeyPolicy::TrustOnFirstUse {
        known: Some(seen.openssh.clone()),
    });
    assert_eq!(
        russh_login(&recorded, "app1", &app_password).await,
        LoginCheck::Accepted
    );
    let recorded_foreign = host.target(HostKeyPolicy::TrustOnFirstUse {
        known: Some(foreign.trim().to_owned()),
    });
    let error = HostConnection::try_login(&recorded_foreign, "app1", &app_password)
        .await
        .expect_err("recorded key differs");
    assert!(matches!(
        reason_of(&error),
        BeforeChangeReason::HostKeyMismatch { .. }
    ));

    // Pinned to a key of a type the host does not have at all: a mismatch as well.
    let p521 = host.sh(
        "ssh-keygen -q -t ecdsa -b 521 -N '' -f /tmp/p521 >/dev/null && cut -d' ' -f1,2 /tmp/p521.pub",
    );
    let other_type = host.target(HostKeyPolicy::Pinned(p521.trim().to_owned()));
    let error = HostConnection::try_login(&other_type, "app1", &app_password)
        .await
        .expect_err("the host has no P-521 key");
    assert!(
        matches!(
            reason_of(&error),
            BeforeChangeReason::HostKeyMismatch { .. }
        ),
        "{error}"
    );

    // Pinning the host's RSA key works too: the pinned algorithm is asked for.
    let rsa = host.target(HostKeyPolicy::Pinned(host.host_key("rsa")));
    let (connection, seen) = HostConnection::connect(&rsa, "mgmt", &parent_password)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    connection.close().await;
    assert_eq!(seen.fingerprint, host.host_key_fingerprint("rsa"));

    // Nothing was changed by any of this.
    assert_password_is(
        &host,
        &host.pinned_target(),
        "app1",
        &app_password,
        &fresh_password("x"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyboard_interactive_only_host_still_rotates() {
    if skip_requested() {
        eprintln!("ROTOR_E2E=skip: not run");
        return;
    }
    let host = TestHost::start("kbdint");
    let parent_password = fresh_password("mgmt");
    let app1_password = fresh_password("app1");
    let app2_password = fresh_password("app2");
    host.add_users(&[
        ("mgmt", &parent_password),
        ("app1", &app1_password),
        ("app2", &app2_password),
    ]);
    host.allow_sudo_chpasswd();
    // Placed before 00-rotor-test.conf ('-' sorts before '0'): the first value wins.
    host.sh(
        "printf 'PasswordAuthentication no\\nKbdInteractiveAuthentication yes\\n' \
         > /etc/ssh/sshd_config.d/0-keyboard-interactive-only.conf",
    );
    host.restart_sshd();
    let effective =
        host.sh("sshd -T | grep -E '^(passwordauthentication|kbdinteractiveauthentication) '");
    assert!(
        effective.contains("passwordauthentication no"),
        "{effective}"
    );
    assert!(
        effective.contains("kbdinteractiveauthentication yes"),
        "{effective}"
    );
    let target = host.pinned_target();

    let new_app1 = fresh_password("new1");
    let (mut connection, _) = HostConnection::connect(&target, "mgmt", &parent_password)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    connection
        .change_passwords_with_sudo(CHPASSWD, &[("app1".to_owned(), new_app1.clone())])
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    connection.close().await;

    let new_app2 = fresh_password("new2");
    let (mut connection, _) = HostConnection::connect(&target, "app2", &app2_password)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    connection
        .change_own_password_with_passwd("app2", &app2_password, &new_app2)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    connection.close().await;

    // A wrong password is still a clean "rejected" over keyboard-interactive.
    assert_password_is(&host, &target, "app1", &new_app1, &app1_password).await;
    assert_password_is(&host, &target, "app2", &new_app2, &app2_password).await;
    let log = host.sshd_log();
    assert!(
        log.contains("Accepted keyboard-interactive/pam for mgmt"),
        "{log}"
    );
    assert!(!log.contains("Accepted password for"), "{log}");
}

/// The agent-on-the-host case: this test binary is copied into a container and runs
/// `change_passwords_locally` there against the real chpasswd; the outer half proves the
/// result by logging in over SSH.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_chpasswd_changes_passwords_on_the_host_itself() {
    if std::env::var(INSIDE_VARIABLE).is_ok() {
        inside_the_host().await;
        return;
    }
    if skip_requested() {
        eprintln!("ROTOR_E2E=skip: not run");
        return;
    }
    let host = TestHost::start("local");
    let old1 = fresh_password("old1");
    let old2 = fresh_password("old2");
    host.add_users(&[("app1", &old1), ("app2", &old2)]);
    let new1 = fresh_password("new1");
    let new2 = fresh_password("new2");

    let binary = std::env::current_exe().unwrap_or_else(|error| panic!("own path: {error}"));
    let binary = binary.to_string_lossy().into_owned();
    let copy_target = format!("{}:/usr/local/bin/rotor-exec-e2e", host.container);
    let copied = docker(&["cp", &binary, &copy_target]);
    assert!(
        copied.status.success(),
        "docker cp: {}",
        String::from_utf8_lossy(&copied.stderr)
    );
    let batch = format!("app1:{}\napp2:{}\n", new1.expose(), new2.expose());
    let inside_flag = format!("{INSIDE_VARIABLE}=1");
    let output = host.exec_with_stdin(
        &[
            "/usr/local/bin/rotor-exec-e2e",
            "--exact",
            "local_chpasswd_changes_passwords_on_the_host_itself",
            "--nocapture",
            "--test-threads=1",
        ],
        &[inside_flag.as_str()],
        &batch,
    );
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "the inner half failed:\n{report}");
    assert!(
        report.contains("1 passed"),
        "the inner half did not run:\n{report}"
    );
    for line in report.lines().filter(|line| line.starts_with("timing:")) {
        eprintln!("{line} (inside the container)");
    }

    let target = host.pinned_target();
    assert_password_is(&host, &target, "app1", &new1, &old1).await;
    assert_password_is(&host, &target, "app2", &new2, &old2).await;
}

/// Inner half: reads the batch from stdin and changes it with the host's real chpasswd.
async fn inside_the_host() {
    let mut input = String::new();
    std::io::stdin()
        .read_line(&mut input)
        .and_then(|_| std::io::stdin().read_line(&mut input))
        .unwrap_or_else(|error| panic!("reading the batch: {error}"));
    let changes: Vec<(String, Password)> = input
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(user, password)| (user.to_owned(), Password::new(password)))
        .collect();
    assert_eq!(changes.len(), 2, "expected two accounts on stdin");
    let started = Instant::now();
    change_passwords_locally(&changes, CHPASSWD.as_ref(), Duration::from_secs(20))
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    eprintln!(
        "timing: local chpasswd of 2 accounts {:?}",
        started.elapsed()
    );

    // An account the host lacks is named; nothing else in that batch is touched.
    let error = change_passwords_locally(
        &[("ghost".to_owned(), fresh_password("ghost"))],
        CHPASSWD.as_ref(),
        Duration::from_secs(20),
    )
    .await
    .expect_err("ghost does not exist");
    assert_eq!(
        reason_of(&error),
        &BeforeChangeReason::UnknownUser {
            user: "ghost".to_owned()
        }
    );
}
