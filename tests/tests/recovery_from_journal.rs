//! Issue 16, job identity end to end: a change whose answer the controller never received
//! (killed after the agent made the change, before the result arrived) settles from the
//! agent's journal when the agent reconnects, without a probe login.
//!
//! In process, no Docker: the real dispatcher and OS engine over an in-memory store, and the
//! real agent link over QUIC on loopback with a handler that records every job it is sent.
//! The crash is staged exactly: the store holds the pending candidate under job id J (what
//! `record_pending_candidates` wrote before the job went out) and the agent's journal holds
//! its unacknowledged result for J (what the agent wrote when the change was made). Then the
//! agent connects and recovery runs. Also: pending changes of several hosts are probed side
//! by side.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rotor_agent::handlers::JobHandler;
use rotor_common::ids::JobId;
use rotor_common::secret::Password;
use rotor_common::wire::os::{AccountResult, OsOutcome};
use rotor_common::wire::{JobKind, JobOutcome, JobResult};
use rotor_controller::dispatch::DispatchSettings;
use rotor_controller::engines::os::OsEngine;
use rotor_controller::engines::os::model::{
    self, AccountRecord, AccountStatus, Connection, HostRecord,
};
use rotor_controller::store::Store;
use rotor_tests::inprocess::InProcessController;

const SITE: &str = "lab";
const MOUNT: &str = "os/";

fn host() -> HostRecord {
    HostRecord {
        name: "h1".into(),
        address: "127.0.0.1".into(),
        port: 22,
        ssh_host_key: None,
        trusted_host_key: None,
        site: Some(SITE.into()),
        connection: Connection::Ssh,
        agent: None,
        chpasswd_command: "/usr/sbin/chpasswd".into(),
        passwd_prompts_json: None,
        created_unix: 0,
        password_policy: None,
    }
}

fn journal_settlements() -> u64 {
    rotor_controller::metrics::global()
        .snapshot()
        .verifications
        .iter()
        .filter(|(kind, result, _)| *kind == "pending" && *result == "agent_journal")
        .map(|(_, _, count)| *count)
        .sum()
}

/// The controller's side in process, and the OS engine over it.
struct Lab {
    controller: InProcessController,
    store: Arc<Store>,
    engine: OsEngine,
}

fn lab() -> Result<Lab> {
    let controller = InProcessController::start(DispatchSettings::default())?;
    let store = controller.store.clone();
    let engine = OsEngine::new(store.clone(), controller.dispatcher.clone());
    Ok(Lab {
        controller,
        store,
        engine,
    })
}

/// Enrolls an agent of the site; answers the directory to run it from.
async fn enroll_agent(lab: &Lab, dirs: &tempfile::TempDir) -> Result<std::path::PathBuf> {
    let (_, dir) = lab.controller.enroll_agent(SITE, dirs.path()).await?;
    Ok(dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_the_agent_journaled_settles_without_a_probe_after_a_controller_crash()
-> Result<()> {
    let lab = lab()?;
    let (store, engine) = (lab.store.clone(), lab.engine.clone());
    // A parent-managed account, its change in flight under job J when the controller died.
    let mut parent = AccountRecord::new("h1", "mgmt");
    parent.username = "mgmt".into();
    let mut child = AccountRecord::new("h1", "app");
    child.username = "app-user".into();
    child.parent_ref = Some("mgmt".into());
    model::load_host_with_accounts(
        &store,
        MOUNT,
        &host(),
        vec![
            (parent, Password::new("Mgmt-1".to_string())),
            (child, Password::new("App-1".to_string())),
        ],
    )?;
    let job = JobId::generate();
    let candidate = Password::new("App-2-candidate".to_string());
    model::record_pending_candidates(
        &store,
        MOUNT,
        "h1",
        &job.to_string(),
        &[("app".to_string(), candidate.clone())],
    )
    .map_err(|error| anyhow::anyhow!("recording the pending candidate: {}", error.message))?;

    // The agent made the change and journaled it; the answer never reached the controller.
    let dirs = tempfile::tempdir()?;
    let dir = enroll_agent(&lab, &dirs).await?;
    rotor_agent::journal::Journal::open(&dir)?.record(&JobResult {
        id: job,
        outcome: JobOutcome::Os(OsOutcome::Rotated {
            accounts: vec![("app-user".into(), AccountResult::Changed)],
            host_key: None,
        }),
    })?;

    // Recovery starts before the agent is back (as at a controller's start): it waits for
    // the agent, reads its journal, and settles. Any job sent to the agent is a probe.
    let sent: Arc<Mutex<Vec<String>>> = Arc::default();
    let recorded = sent.clone();
    let handler: JobHandler = Arc::new(move |kind: JobKind| {
        let recorded = recorded.clone();
        Box::pin(async move {
            if let Ok(mut jobs) = recorded.lock() {
                jobs.push(format!("{kind:?}").chars().take(40).collect());
            }
            JobOutcome::Failed(rotor_common::wire::JobFailure {
                certainty: rotor_common::wire::FailureCertainty::BeforeChange,
                message: "this test's agent runs no jobs".into(),
            })
        })
    });
    let before = journal_settlements();
    let recovery = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.recover_pending(MOUNT).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let agent_dir = dir.clone();
    tokio::spawn(async move {
        let _ = rotor_agent::link::run_with(&agent_dir, stopped, handler).await;
    });
    let resolved = tokio::time::timeout(Duration::from_secs(30), recovery)
        .await
        .context("recovery did not finish in 30 s")??
        .map_err(|error| anyhow::anyhow!("recovery failed: {}", error.message))?;
    let _ = stop.send(true);

    assert_eq!(resolved, 1, "the pending change settled");
    let account =
        model::get_account(&store, MOUNT, "h1", "app")?.context("the account is still there")?;
    assert_eq!(account.status, AccountStatus::InSync);
    assert!(account.pending.is_none());
    assert_eq!(
        account.current_version, 2,
        "the journaled change was committed"
    );
    let current = model::current_password(&store, MOUNT, &account)?;
    assert_eq!(current.expose(), candidate.expose());
    let probes = sent.lock().map(|jobs| jobs.clone()).unwrap_or_default();
    if !probes.is_empty() {
        bail!("recovery sent jobs to the agent instead of reading its journal: {probes:?}");
    }
    assert!(
        journal_settlements() > before,
        "the settlement from the journal is counted in rotor_verifications_total"
    );
    Ok(())
}

/// Issue 16, recovery in parallel: pending changes of different hosts are probed side by
/// side (one host's in order). Each probe here takes 3 s on the simulated agent, so two
/// hosts probed one after the other would never overlap; the test asserts the overlap, not
/// a duration, so a slow machine cannot fail it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_changes_of_different_hosts_are_probed_side_by_side() -> Result<()> {
    let lab = lab()?;
    for name in ["h1", "h2"] {
        let mut record = host();
        record.name = name.into();
        let mut account = AccountRecord::new(name, "app");
        account.username = "app-user".into();
        model::load_host_with_accounts(
            &lab.store,
            MOUNT,
            &record,
            vec![(account, Password::new("App-1".to_string()))],
        )?;
        model::record_pending_candidates(
            &lab.store,
            MOUNT,
            name,
            &JobId::generate().to_string(),
            &[(
                "app".to_string(),
                Password::new(format!("{name}-candidate")),
            )],
        )
        .map_err(|error| anyhow::anyhow!("recording a candidate: {}", error.message))?;
    }
    let dirs = tempfile::tempdir()?;
    let dir = enroll_agent(&lab, &dirs).await?;
    // (running now, most at once)
    let probes: Arc<Mutex<(usize, usize)>> = Arc::default();
    let counted = probes.clone();
    let handler: JobHandler = Arc::new(move |_kind: JobKind| {
        let counted = counted.clone();
        Box::pin(async move {
            if let Ok(mut probes) = counted.lock() {
                probes.0 += 1;
                probes.1 = probes.1.max(probes.0);
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
            if let Ok(mut probes) = counted.lock() {
                probes.0 -= 1;
            }
            // The candidate (first) logs in.
            JobOutcome::Os(OsOutcome::Login {
                accepted: Some(0),
                host_key: None,
            })
        })
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _ = rotor_agent::link::run_with(&dir, stopped, handler).await;
    });
    let resolved = tokio::time::timeout(Duration::from_secs(60), lab.engine.recover_pending(MOUNT))
        .await
        .context("recovery did not finish in 60 s")?
        .map_err(|error| anyhow::anyhow!("recovery failed: {}", error.message))?;
    let _ = stop.send(true);
    assert_eq!(resolved, 2);
    let most = probes.lock().map(|probes| probes.1).unwrap_or(0);
    assert_eq!(most, 2, "the two hosts' probes ran one after the other");
    for name in ["h1", "h2"] {
        let account =
            model::get_account(&lab.store, MOUNT, name, "app")?.context("account kept")?;
        assert_eq!(account.current_version, 2, "{name} committed its candidate");
    }
    Ok(())
}

/// The journal entries of the agent in `dir`, read from its file as they are now.
fn journaled(dir: &std::path::Path) -> Result<usize> {
    Ok(rotor_agent::journal::Journal::open(dir)?.unacknowledged_count())
}

/// A change's result stays in the agent's journal until its engine has committed it: the
/// dispatcher does not acknowledge it on arrival (a crash between the two would otherwise
/// lose the evidence recovery reads), and the OS driver acknowledges it after the commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changes_result_is_acknowledged_only_after_its_commit() -> Result<()> {
    use rotor_common::wire::os::OsJob;
    let lab = lab()?;
    let mut account = AccountRecord::new("h1", "app");
    account.username = "app-user".into();
    model::load_host_with_accounts(
        &lab.store,
        MOUNT,
        &host(),
        vec![(account, Password::new("App-1".to_string()))],
    )?;
    let dirs = tempfile::tempdir()?;
    let (agent_id, dir) = lab.controller.enroll_agent(SITE, dirs.path()).await?;
    let handler: JobHandler = Arc::new(|kind: JobKind| {
        Box::pin(async move {
            let username = match &kind {
                JobKind::Os(OsJob::RotateSelf { username, .. }) => username.clone(),
                _ => String::new(),
            };
            JobOutcome::Os(OsOutcome::Rotated {
                accounts: vec![(username, AccountResult::Changed)],
                host_key: None,
            })
        })
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let agent_dir = dir.clone();
    tokio::spawn(async move {
        let _ = rotor_agent::link::run_with(&agent_dir, stopped, handler).await;
    });
    let target = rotor_controller::dispatch::JobTarget::Site(SITE.into());
    if !lab
        .controller
        .dispatcher
        .wait_until_connected(&target, Duration::from_secs(20))
        .await
    {
        bail!("the agent did not connect");
    }

    // Straight through the dispatcher: the result arrives, and stays journaled.
    let job = JobId::generate();
    let change = JobKind::Os(OsJob::RotateLocal {
        command: "/usr/sbin/chpasswd".into(),
        changes: Vec::new(),
    });
    lab.controller
        .dispatcher
        .submit_for_host(&target, Some("h9"), job, change, Duration::from_secs(30))
        .await
        .map_err(|error| anyhow::anyhow!("submitting: {error}"))?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        journaled(&dir)?,
        1,
        "a change's result was acknowledged when it arrived"
    );
    let agent = rotor_common::ids::AgentId::new(agent_id.as_str())?;
    lab.controller
        .dispatcher
        .acknowledge_result(&agent, job)
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while journaled(&dir)? > 0 {
        if std::time::Instant::now() > deadline {
            bail!("the acknowledged result is still journaled");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Through the OS driver: committed, then acknowledged.
    let report = lab
        .engine
        .rotate_account(MOUNT, "h1", "app")
        .await
        .map_err(|error| anyhow::anyhow!("rotating: {}", error.message))?;
    assert_eq!(report.committed_version, Some(2));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while journaled(&dir)? > 0 {
        if std::time::Instant::now() > deadline {
            bail!("the committed rotation's result is still journaled");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    Ok(())
}
