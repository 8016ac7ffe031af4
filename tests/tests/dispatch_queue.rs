//! The dispatcher's queue (issue 7 "Dispatcher") with simulated agents: the real controller
//! dispatcher and the real agent link over QUIC on loopback, in this process, with job
//! handlers that sleep and record what runs when. No Docker.
//!
//! Proves the per-agent and per-host caps hold, one host's burst does not starve another
//! host's job, queued jobs go to another agent when theirs leaves, a job gives up with a
//! clear error after `queue_wait` (and not after the shorter `agent_wait` while agents are busy), and the queue depth shows in the metrics. Owns only these
//! scenarios; the admission rules themselves are unit-tested in `dispatch/queue.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rotor_agent::handlers::JobHandler;
use rotor_common::ids::{AgentId, JobId};
use rotor_common::wire::{JobKind, JobOutcome};
use rotor_controller::dispatch::{DispatchError, DispatchSettings, Dispatcher, JobTarget};
use rotor_tests::inprocess::InProcessController;
use tokio::sync::watch;

const SITE: &str = "lab";

/// What the simulated agents saw: jobs running now and the most at once, per agent and per
/// host, and the order jobs started in.
#[derive(Default)]
struct Observed {
    running_per_agent: HashMap<String, usize>,
    most_per_agent: HashMap<String, usize>,
    running_per_host: HashMap<String, usize>,
    most_per_host: HashMap<String, usize>,
    /// (agent, host) in start order.
    starts: Vec<(String, String)>,
}

type Shared = Arc<Mutex<Observed>>;

fn observed(shared: &Shared) -> std::sync::MutexGuard<'_, Observed> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A controller's dispatcher serving on loopback, and the agents enrolled into it.
struct Lab {
    controller: InProcessController,
    dispatcher: Dispatcher,
    dirs: tempfile::TempDir,
    shared: Shared,
    stops: Vec<watch::Sender<bool>>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for stop in &self.stops {
            let _ = stop.send(true);
        }
        self.dispatcher.close_all();
    }
}

async fn lab(settings: DispatchSettings) -> Result<Lab> {
    let controller = InProcessController::start(settings)?;
    Ok(Lab {
        dispatcher: controller.dispatcher.clone(),
        controller,
        dirs: tempfile::tempdir()?,
        shared: Shared::default(),
        stops: Vec::new(),
    })
}

impl Lab {
    /// Enrolls an agent into the site and runs it with a handler that sleeps `job_time` per
    /// job and records it; answers its id once it is connected.
    async fn start_agent(&mut self, job_time: Duration) -> Result<String> {
        let (agent, dir) = self.controller.enroll_agent(SITE, self.dirs.path()).await?;
        let handler = recording_handler(agent.clone(), self.shared.clone(), job_time);
        let (stop, stopped) = watch::channel(false);
        self.stops.push(stop);
        tokio::spawn(async move {
            let _ = rotor_agent::link::run_with(&dir, stopped, handler).await;
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.dispatcher.live_status(&agent).is_none() {
            if Instant::now() > deadline {
                bail!("agent {agent} did not connect in 20 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(agent)
    }

    /// Submits an echo job for `host` to the site, in a task of its own.
    fn submit(
        &self,
        host: &str,
    ) -> tokio::task::JoinHandle<Result<(AgentId, JobOutcome), DispatchError>> {
        let dispatcher = self.dispatcher.clone();
        let host = host.to_string();
        tokio::spawn(async move {
            dispatcher
                .submit_for_host(
                    &JobTarget::Site(SITE.into()),
                    Some(&host),
                    JobId::generate(),
                    JobKind::Echo {
                        payload: host.clone().into_bytes(),
                    },
                    Duration::from_secs(60),
                )
                .await
        })
    }

    /// Waits until `depth` jobs wait in the site's queue.
    async fn wait_for_queue_depth(&self, depth: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = site_depth(&self.dispatcher);
            if now == depth {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("queue depth stayed {now}, expected {depth}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Lab {
    /// Waits until the agents have started `count` jobs.
    async fn wait_for_starts(&self, count: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while observed(&self.shared).starts.len() < count {
            if Instant::now() > deadline {
                bail!("fewer than {count} jobs started in 10 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }
}

fn site_depth(dispatcher: &Dispatcher) -> usize {
    dispatcher
        .queue_depths()
        .into_iter()
        .find(|(site, _)| site == SITE)
        .map(|(_, depth)| depth)
        .unwrap_or(0)
}

/// Echoes the host name back after `job_time`, counting running jobs per agent and host.
fn recording_handler(agent: String, shared: Shared, job_time: Duration) -> JobHandler {
    Arc::new(move |kind| {
        let agent = agent.clone();
        let shared = shared.clone();
        Box::pin(async move {
            let JobKind::Echo { payload } = kind else {
                return JobOutcome::Echo {
                    payload: Vec::new(),
                };
            };
            let host = String::from_utf8_lossy(&payload).to_string();
            {
                let mut seen = observed(&shared);
                let running = seen.running_per_agent.entry(agent.clone()).or_insert(0);
                *running += 1;
                let running = *running;
                let most = seen.most_per_agent.entry(agent.clone()).or_insert(0);
                *most = (*most).max(running);
                let running = seen.running_per_host.entry(host.clone()).or_insert(0);
                *running += 1;
                let running = *running;
                let most = seen.most_per_host.entry(host.clone()).or_insert(0);
                *most = (*most).max(running);
                seen.starts.push((agent.clone(), host.clone()));
            }
            tokio::time::sleep(job_time).await;
            {
                let mut seen = observed(&shared);
                if let Some(running) = seen.running_per_agent.get_mut(&agent) {
                    *running -= 1;
                }
                if let Some(running) = seen.running_per_host.get_mut(&host) {
                    *running -= 1;
                }
            }
            JobOutcome::Echo { payload }
        })
    })
}

fn settings(per_agent: usize, per_host: usize, agent_wait: Duration) -> DispatchSettings {
    DispatchSettings {
        max_jobs_per_agent: per_agent,
        max_jobs_per_host: per_host,
        agent_wait,
        ..DispatchSettings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_agent_cap_is_never_exceeded() -> Result<()> {
    let mut lab = lab(settings(3, 100, Duration::from_secs(30))).await?;
    let first = lab.start_agent(Duration::from_millis(150)).await?;
    let second = lab.start_agent(Duration::from_millis(150)).await?;
    let jobs: Vec<_> = (0..24)
        .map(|index| lab.submit(&format!("h{index}")))
        .collect();
    for job in jobs {
        job.await?.context("a job under the cap failed")?;
    }
    let seen = observed(&lab.shared);
    assert_eq!(seen.starts.len(), 24);
    for agent in [&first, &second] {
        let most = seen.most_per_agent.get(agent).copied().unwrap_or(0);
        assert!(most <= 3, "agent {agent} ran {most} jobs at once, cap 3");
        assert!(
            most >= 2,
            "agent {agent} never ran jobs in parallel ({most})"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_host_cap_holds() -> Result<()> {
    let mut lab = lab(settings(32, 1, Duration::from_secs(30))).await?;
    lab.start_agent(Duration::from_millis(100)).await?;
    lab.start_agent(Duration::from_millis(100)).await?;
    let jobs: Vec<_> = (0..12)
        .map(|index| lab.submit(if index % 2 == 0 { "web-1" } else { "db-1" }))
        .collect();
    for job in jobs {
        job.await?.context("a job failed")?;
    }
    let seen = observed(&lab.shared);
    assert_eq!(seen.starts.len(), 12);
    assert_eq!(seen.most_per_host.get("web-1"), Some(&1));
    assert_eq!(seen.most_per_host.get("db-1"), Some(&1));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_one_host_does_not_starve_another_hosts_job() -> Result<()> {
    // One agent, one slot, a host cap that does not bind: only fairness orders the jobs.
    let mut lab = lab(settings(1, 100, Duration::from_secs(60))).await?;
    lab.start_agent(Duration::from_millis(100)).await?;
    let mut jobs = vec![lab.submit("busy")];
    lab.wait_for_starts(1).await?;
    for index in 1..8 {
        jobs.push(lab.submit("busy"));
        lab.wait_for_queue_depth(index).await?;
    }
    jobs.push(lab.submit("quiet"));
    for job in jobs {
        job.await?.context("a job failed")?;
    }
    let seen = observed(&lab.shared);
    let order: Vec<&str> = seen.starts.iter().map(|(_, host)| host.as_str()).collect();
    let quiet = order
        .iter()
        .position(|host| *host == "quiet")
        .context("the quiet host's job never ran")?;
    assert!(
        quiet <= 2,
        "the quiet host's job started {quiet}th, after the burst: {order:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_jobs_move_to_another_agent_when_theirs_disconnects() -> Result<()> {
    let mut lab = lab(settings(1, 100, Duration::from_secs(30))).await?;
    let first = lab.start_agent(Duration::from_secs(30)).await?;
    let running = lab.submit("h0");
    lab.wait_for_starts(1).await?;
    let queued: Vec<_> = (1..3)
        .map(|index| lab.submit(&format!("h{index}")))
        .collect();
    lab.wait_for_queue_depth(2).await?;
    // The first agent leaves: its running job is uncertain, the queued ones were never sent.
    lab.dispatcher.revoke(&first)?;
    let in_flight = running.await?;
    assert!(
        matches!(in_flight, Err(DispatchError::OutcomeUnknown { .. })),
        "the job in flight should be uncertain, got {in_flight:?}"
    );
    let second = lab.start_agent(Duration::from_millis(50)).await?;
    for job in queued {
        let (agent, outcome) = job.await?.context("a queued job failed")?;
        assert_eq!(agent.as_str(), second, "a queued job ran on {agent}");
        assert!(matches!(outcome, JobOutcome::Echo { .. }));
    }
    let seen = observed(&lab.shared);
    let on_first = seen
        .starts
        .iter()
        .filter(|(agent, _)| *agent == first)
        .count();
    assert_eq!(
        on_first, 1,
        "only the job in flight reached the first agent"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_gives_up_after_queue_wait_when_no_slot_frees() -> Result<()> {
    let mut lab = lab(DispatchSettings {
        queue_wait: Duration::from_secs(1),
        ..settings(1, 100, Duration::from_secs(30))
    })
    .await?;
    lab.start_agent(Duration::from_secs(5)).await?;
    let running = lab.submit("h0");
    lab.wait_for_starts(1).await?;
    let started = Instant::now();
    let refused = lab.submit("h1").await?;
    let waited = started.elapsed();
    let Err(error) = refused else {
        bail!("the second job ran although no slot was free");
    };
    assert!(
        matches!(error, DispatchError::NoFreeSlot { .. }),
        "{error:?}"
    );
    assert!(error.certainly_not_run());
    let message = error.to_string();
    assert!(message.contains("site 'lab'"), "{message}");
    assert!(message.contains("not sent"), "{message}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "waited {waited:?}"
    );
    assert_eq!(site_depth(&lab.dispatcher), 0, "the ticket was withdrawn");
    running.await?.context("the running job failed")?;
    assert_eq!(observed(&lab.shared).starts.len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_job_outwaits_agent_wait_while_the_agents_are_busy() -> Result<()> {
    // agent_wait bounds waiting for an agent to come; a busy, connected agent is not that.
    let mut lab = lab(settings(1, 100, Duration::from_secs(1))).await?;
    lab.start_agent(Duration::from_millis(2500)).await?;
    let running = lab.submit("h0");
    lab.wait_for_starts(1).await?;
    let started = Instant::now();
    let queued = lab.submit("h1").await?;
    let waited = started.elapsed();
    queued.context("the queued job failed although its agent stayed connected")?;
    assert!(waited >= Duration::from_millis(1500), "waited {waited:?}");
    running.await?.context("the running job failed")?;
    assert_eq!(observed(&lab.shared).starts.len(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_depth_and_jobs_per_agent_show_in_the_metrics() -> Result<()> {
    let mut lab = lab(settings(1, 100, Duration::from_secs(30))).await?;
    let agent = lab.start_agent(Duration::from_secs(1)).await?;
    let jobs: Vec<_> = (0..4)
        .map(|index| lab.submit(&format!("h{index}")))
        .collect();
    lab.wait_for_queue_depth(3).await?;
    let fleet = rotor_controller::metrics::fleet::read(&lab.controller.store, &lab.dispatcher)?;
    let text = rotor_controller::metrics::render::prometheus(
        &rotor_controller::metrics::global().snapshot(),
        &fleet,
    );
    for line in [
        "rotor_dispatch_queue_depth{site=\"lab\"} 3".to_string(),
        format!("rotor_agent_jobs_in_flight{{agent=\"{agent}\"}} 1"),
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
    for job in jobs {
        job.await?.context("a job failed")?;
    }
    let fleet = rotor_controller::metrics::fleet::read(&lab.controller.store, &lab.dispatcher)?;
    let text = rotor_controller::metrics::render::prometheus(
        &rotor_controller::metrics::global().snapshot(),
        &fleet,
    );
    assert!(
        text.lines()
            .any(|l| l == "rotor_dispatch_queue_depth{site=\"lab\"} 0"),
        "{text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_stops_waiting_leaves_no_ticket_and_no_slot_behind() -> Result<()> {
    let mut lab = lab(settings(1, 100, Duration::from_secs(30))).await?;
    lab.start_agent(Duration::from_millis(500)).await?;
    let running = lab.submit("h0");
    lab.wait_for_starts(1).await?;
    let dispatcher = lab.dispatcher.clone();
    let abandoned = tokio::time::timeout(
        Duration::from_millis(100),
        dispatcher.submit_for_host(
            &JobTarget::Site(SITE.into()),
            Some("h1"),
            JobId::generate(),
            JobKind::Echo {
                payload: b"h1".to_vec(),
            },
            Duration::from_secs(60),
        ),
    )
    .await;
    assert!(abandoned.is_err(), "the job should still have been waiting");
    assert_eq!(
        site_depth(&lab.dispatcher),
        0,
        "the abandoned ticket stayed queued"
    );
    running.await?.context("the running job failed")?;
    lab.submit("h2")
        .await?
        .context("the slot was not given back")?;
    let seen = observed(&lab.shared);
    let hosts: Vec<&str> = seen.starts.iter().map(|(_, host)| host.as_str()).collect();
    assert_eq!(hosts, ["h0", "h2"]);
    Ok(())
}
