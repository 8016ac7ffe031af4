//! Admission control for jobs: per-site wait queues, the per-agent and per-host caps on jobs
//! in flight, and the fair order in which waiting jobs get a slot that frees.
//!
//! Owns the counts of jobs in flight per agent and per host, and the tickets of jobs waiting
//! for a slot. A ticket holds no payload: the job stays with its caller, who awaits the grant
//! (back-pressure), so waiting costs a few bytes per job. IO-free and clock-free: it never
//! touches QUIC, timers or the store; the dispatcher tells it which agents are connected,
//! carries out its grants and gives up on tickets whose wait is over. Must not decide what a
//! job means, nor retry one.

use std::collections::{HashMap, VecDeque};

/// Identifies one waiting job.
pub type TicketId = u64;

/// The caps on jobs in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Jobs one agent runs at once.
    pub per_agent: usize,
    /// Jobs touching one host at once, whichever agents run them.
    pub per_host: usize,
}

/// A waiting job that got a slot on `agent`; its counts are already taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub ticket: TicketId,
    pub agent: String,
    /// The job's site and host, to release the slot with.
    pub site: String,
    pub host: Option<String>,
}

/// A connected agent as the admission sees it.
#[derive(Debug, Clone, Copy)]
pub struct ConnectedAgent<'a> {
    pub agent: &'a str,
    pub site: &'a str,
    /// The job kinds it can run (its `Hello.capabilities`).
    pub capabilities: &'a [String],
}

impl ConnectedAgent<'_> {
    /// Whether it can run a job needing `capability` (None: any agent can).
    pub fn can_run(&self, capability: Option<&str>) -> bool {
        capability.is_none_or(|wanted| self.capabilities.iter().any(|have| have == wanted))
    }
}

#[derive(Debug)]
struct Ticket {
    id: TicketId,
    host: Option<String>,
    /// Set for jobs addressed to one agent (`JobTarget::Agent`).
    only_agent: Option<String>,
    /// The capability the job's kind needs (`JobKind::capability`); None: any agent.
    capability: Option<String>,
}

/// What fairness rotates over: a host, or a single job that names no host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Unit {
    Host(String),
    Job(TicketId),
}

/// The jobs of one site waiting for a slot.
#[derive(Debug, Default)]
struct SiteQueue {
    /// Round-robin order over units with waiting jobs: a unit served goes to the back, a new
    /// unit joins at the back, so one host's burst cannot hold back another host's job.
    order: VecDeque<Unit>,
    /// Each unit's jobs, oldest first.
    waiting: HashMap<Unit, VecDeque<Ticket>>,
    depth: usize,
    /// Waiting jobs addressed to one agent; while none wait, a site whose agents are all
    /// full is passed over without scanning its queue.
    pinned: usize,
}

/// The admission state of every site. See the module doc.
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    sites: HashMap<String, SiteQueue>,
    /// Where each waiting ticket is, to cancel it.
    ticket_places: HashMap<TicketId, (String, Unit)>,
    jobs_per_agent: HashMap<String, usize>,
    /// By site, then host: a host name is unique within its site's reach.
    jobs_per_host: HashMap<String, HashMap<String, usize>>,
    next_ticket: TicketId,
}

impl Admission {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits: Limits {
                per_agent: limits.per_agent.max(1),
                per_host: limits.per_host.max(1),
            },
            sites: HashMap::new(),
            ticket_places: HashMap::new(),
            jobs_per_agent: HashMap::new(),
            jobs_per_host: HashMap::new(),
            next_ticket: 1,
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Puts a job in its site's queue; it runs when [`Admission::grant`] answers its ticket.
    pub fn enqueue(
        &mut self,
        site: &str,
        host: Option<&str>,
        only_agent: Option<&str>,
        capability: Option<&str>,
    ) -> TicketId {
        let id = self.next_ticket;
        self.next_ticket += 1;
        let unit = match host {
            Some(host) => Unit::Host(host.to_string()),
            None => Unit::Job(id),
        };
        let queue = self.sites.entry(site.to_string()).or_default();
        let jobs = queue.waiting.entry(unit.clone()).or_default();
        if jobs.is_empty() {
            queue.order.push_back(unit.clone());
        }
        jobs.push_back(Ticket {
            id,
            host: host.map(str::to_string),
            only_agent: only_agent.map(str::to_string),
            capability: capability.map(str::to_string),
        });
        queue.depth += 1;
        if only_agent.is_some() {
            queue.pinned += 1;
        }
        self.ticket_places.insert(id, (site.to_string(), unit));
        id
    }

    /// Withdraws a waiting ticket. False when it is not waiting (already granted, or unknown).
    pub fn cancel(&mut self, ticket: TicketId) -> bool {
        let Some((site, unit)) = self.ticket_places.remove(&ticket) else {
            return false;
        };
        let Some(queue) = self.sites.get_mut(&site) else {
            return false;
        };
        let Some(jobs) = queue.waiting.get_mut(&unit) else {
            return false;
        };
        let Some(position) = jobs.iter().position(|waiting| waiting.id == ticket) else {
            return false;
        };
        let removed = jobs.remove(position);
        if removed
            .as_ref()
            .is_some_and(|ticket| ticket.only_agent.is_some())
        {
            queue.pinned -= 1;
        }
        if jobs.is_empty() {
            queue.waiting.remove(&unit);
            queue.order.retain(|other| other != &unit);
        }
        queue.depth -= 1;
        if queue.depth == 0 {
            self.sites.remove(&site);
        }
        true
    }

    /// Gives back a granted slot (the job ended, or was never sent).
    pub fn release(&mut self, site: &str, host: Option<&str>, agent: &str) {
        if let Some(count) = self.jobs_per_agent.get_mut(agent) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.jobs_per_agent.remove(agent);
            }
        }
        if let Some(host) = host
            && let Some(hosts) = self.jobs_per_host.get_mut(site)
        {
            if let Some(count) = hosts.get_mut(host) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    hosts.remove(host);
                }
            }
            if hosts.is_empty() {
                self.jobs_per_host.remove(site);
            }
        }
    }

    /// Grants every slot that can be granted now, in fair order, each to the least-loaded
    /// connected agent of the job's site under its cap. Call it whenever a slot may have
    /// freed: a job enqueued or ended, an agent connected.
    pub fn grant(&mut self, connected: &[ConnectedAgent<'_>]) -> Vec<Grant> {
        let mut grants = Vec::new();
        let sites: Vec<String> = self.sites.keys().cloned().collect();
        for site in sites {
            let agents: Vec<ConnectedAgent<'_>> = connected
                .iter()
                .filter(|agent| agent.site == site)
                .copied()
                .collect();
            while let Some(grant) = self.grant_one(&site, &agents) {
                grants.push(grant);
            }
        }
        grants
    }

    fn grant_one(&mut self, site: &str, agents: &[ConnectedAgent<'_>]) -> Option<Grant> {
        let queue = self.sites.get(site)?;
        let under_cap =
            |agent: &&ConnectedAgent<'_>| self.agent_jobs(agent.agent) < self.limits.per_agent;
        // The agent a job may use: the least loaded under its cap that can run its kind.
        let least_loaded = |capability: Option<&str>| {
            agents
                .iter()
                .filter(under_cap)
                .filter(|agent| agent.can_run(capability))
                .min_by_key(|agent| self.agent_jobs(agent.agent))
        };
        if !agents.iter().any(|agent| under_cap(&agent)) && queue.pinned == 0 {
            return None;
        }
        let mut chosen = None;
        for (position, unit) in queue.order.iter().enumerate() {
            let Some(ticket) = queue.waiting.get(unit).and_then(|jobs| jobs.front()) else {
                continue;
            };
            if let Some(host) = &ticket.host
                && self.host_jobs(site, host) >= self.limits.per_host
            {
                continue;
            }
            let capability = ticket.capability.as_deref();
            let agent = match ticket.only_agent.as_deref() {
                None => least_loaded(capability),
                Some(only) => agents
                    .iter()
                    .filter(under_cap)
                    .find(|agent| agent.agent == only && agent.can_run(capability)),
            };
            if let Some(agent) = agent {
                chosen = Some((position, agent.agent.to_string()));
                break;
            }
        }
        let (position, agent) = chosen?;
        let queue = self.sites.get_mut(site)?;
        let unit = queue.order.remove(position)?;
        let jobs = queue.waiting.get_mut(&unit)?;
        let ticket = jobs.pop_front()?;
        if jobs.is_empty() {
            queue.waiting.remove(&unit);
        } else {
            queue.order.push_back(unit);
        }
        queue.depth -= 1;
        if ticket.only_agent.is_some() {
            queue.pinned -= 1;
        }
        if queue.depth == 0 {
            self.sites.remove(site);
        }
        self.ticket_places.remove(&ticket.id);
        *self.jobs_per_agent.entry(agent.clone()).or_insert(0) += 1;
        if let Some(host) = &ticket.host {
            *self
                .jobs_per_host
                .entry(site.to_string())
                .or_default()
                .entry(host.clone())
                .or_insert(0) += 1;
        }
        Some(Grant {
            ticket: ticket.id,
            agent,
            site: site.to_string(),
            host: ticket.host,
        })
    }

    /// Jobs in flight on one agent.
    pub fn agent_jobs(&self, agent: &str) -> usize {
        self.jobs_per_agent.get(agent).copied().unwrap_or(0)
    }

    /// Jobs in flight touching one host of a site.
    pub fn host_jobs(&self, site: &str, host: &str) -> usize {
        self.jobs_per_host
            .get(site)
            .and_then(|hosts| hosts.get(host))
            .copied()
            .unwrap_or(0)
    }

    /// Jobs waiting per site (sites with none are absent).
    pub fn queue_depths(&self) -> Vec<(String, usize)> {
        self.sites
            .iter()
            .map(|(site, queue)| (site.clone(), queue.depth))
            .collect()
    }

    pub fn queue_depth(&self, site: &str) -> usize {
        self.sites.get(site).map(|queue| queue.depth).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agents<'a>(list: &[(&'a str, &'a str)]) -> Vec<ConnectedAgent<'a>> {
        list.iter()
            .map(|(agent, site)| ConnectedAgent {
                agent,
                site,
                capabilities: &[],
            })
            .collect()
    }

    fn limits(per_agent: usize, per_host: usize) -> Limits {
        Limits {
            per_agent,
            per_host,
        }
    }

    #[test]
    fn per_agent_cap_holds_and_a_release_grants_the_next() {
        let mut admission = Admission::new(limits(2, 10));
        let connected = agents(&[("a1", "s")]);
        let tickets: Vec<_> = (0..3)
            .map(|_| admission.enqueue("s", None, None, None))
            .collect();
        let grants = admission.grant(&connected);
        assert_eq!(grants.len(), 2);
        assert_eq!(admission.agent_jobs("a1"), 2);
        assert_eq!(admission.queue_depth("s"), 1);
        admission.release("s", None, "a1");
        let grants = admission.grant(&connected);
        assert_eq!(grants.len(), 1);
        assert_eq!(
            (grants[0].ticket, grants[0].agent.as_str()),
            (tickets[2], "a1")
        );
        assert_eq!(admission.queue_depth("s"), 0);
        assert!(admission.queue_depths().is_empty());
    }

    #[test]
    fn least_loaded_agent_of_the_site_is_chosen() {
        let mut admission = Admission::new(limits(5, 10));
        let connected = agents(&[("a1", "s"), ("a2", "s"), ("b1", "other")]);
        for _ in 0..4 {
            admission.enqueue("s", None, None, None);
        }
        admission.grant(&connected);
        assert_eq!(admission.agent_jobs("a1"), 2);
        assert_eq!(admission.agent_jobs("a2"), 2);
        assert_eq!(admission.agent_jobs("b1"), 0);
    }

    #[test]
    fn per_host_cap_holds_and_other_hosts_pass_a_blocked_one() {
        let mut admission = Admission::new(limits(10, 1));
        let connected = agents(&[("a1", "s")]);
        let first_a = admission.enqueue("s", Some("host-a"), None, None);
        let _second_a = admission.enqueue("s", Some("host-a"), None, None);
        let only_b = admission.enqueue("s", Some("host-b"), None, None);
        let grants: Vec<_> = admission
            .grant(&connected)
            .into_iter()
            .map(|g| g.ticket)
            .collect();
        assert_eq!(grants, vec![first_a, only_b]);
        assert_eq!(admission.host_jobs("s", "host-a"), 1);
        assert_eq!(admission.queue_depth("s"), 1);
    }

    #[test]
    fn a_burst_of_one_host_does_not_starve_another_host() {
        let mut admission = Admission::new(limits(1, 100));
        let connected = agents(&[("a1", "s")]);
        let burst: Vec<_> = (0..10)
            .map(|_| admission.enqueue("s", Some("busy"), None, None))
            .collect();
        let lone = admission.enqueue("s", Some("quiet"), None, None);
        let mut order = Vec::new();
        for _ in 0..11 {
            let grants = admission.grant(&connected);
            assert_eq!(grants.len(), 1, "one slot, one grant");
            order.push(grants[0].ticket);
            admission.release(
                "s",
                Some(if grants[0].ticket == lone {
                    "quiet"
                } else {
                    "busy"
                }),
                "a1",
            );
        }
        let lone_position = order.iter().position(|t| *t == lone).expect("lone job ran");
        assert!(
            lone_position <= 1,
            "quiet host's job started at {lone_position}: {order:?}"
        );
        assert_eq!(order[0], burst[0]);
    }

    #[test]
    fn cancel_removes_only_waiting_tickets() {
        let mut admission = Admission::new(limits(1, 1));
        let connected = agents(&[("a1", "s")]);
        let granted = admission.enqueue("s", Some("h"), None, None);
        let waiting = admission.enqueue("s", Some("h"), None, None);
        assert_eq!(admission.grant(&connected).len(), 1);
        assert!(!admission.cancel(granted));
        assert!(admission.cancel(waiting));
        assert!(!admission.cancel(waiting));
        assert_eq!(admission.queue_depth("s"), 0);
        admission.release("s", Some("h"), "a1");
        assert!(admission.grant(&connected).is_empty());
    }

    #[test]
    fn jobs_for_one_agent_wait_for_that_agent() {
        let mut admission = Admission::new(limits(1, 10));
        let connected = agents(&[("a1", "s"), ("a2", "s")]);
        admission.enqueue("s", None, Some("a1"), None);
        admission.enqueue("s", None, Some("a1"), None);
        let grants = admission.grant(&connected);
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[0].agent, "a1");
        assert_eq!(admission.agent_jobs("a2"), 0);
        assert_eq!(admission.queue_depth("s"), 1);
    }

    #[test]
    fn a_job_for_one_agent_is_still_granted_when_the_site_is_full() {
        let mut admission = Admission::new(limits(1, 10));
        let connected = agents(&[("a1", "s"), ("a2", "s")]);
        admission.enqueue("s", None, None, None);
        admission.enqueue("s", None, None, None);
        admission.enqueue("s", None, None, None);
        assert_eq!(admission.grant(&connected).len(), 2);
        let for_a1 = admission.enqueue("s", None, Some("a1"), None);
        assert!(admission.grant(&connected).is_empty());
        admission.release("s", None, "a1");
        let grants = admission.grant(&connected);
        // The older unpinned job and the pinned one compete for a1; round-robin serves the
        // older unit first, and the pinned one waits for a1's next slot.
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[0].agent, "a1");
        admission.release("s", None, "a1");
        let grants = admission.grant(&connected);
        assert_eq!(grants.len(), 1);
        assert_eq!((grants[0].ticket, grants[0].agent.as_str()), (for_a1, "a1"));
        assert_eq!(admission.queue_depth("s"), 0);
    }

    #[test]
    fn queued_jobs_go_to_whichever_agent_is_connected_when_a_slot_frees() {
        let mut admission = Admission::new(limits(1, 10));
        admission.enqueue("s", None, None, None);
        admission.enqueue("s", None, None, None);
        assert_eq!(admission.grant(&agents(&[("a1", "s")])).len(), 1);
        // a1 is gone (its job ends as its link drops); the waiting job goes to a2.
        let grants = admission.grant(&agents(&[("a2", "s")]));
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[0].agent, "a2");
    }

    #[test]
    fn a_job_goes_only_to_an_agent_that_can_run_its_kind() {
        let mut admission = Admission::new(limits(4, 10));
        let os: Vec<String> = vec!["echo".into(), "os".into()];
        let old: Vec<String> = vec!["echo".into()];
        let connected = |old_only: bool| {
            let mut list = vec![ConnectedAgent {
                agent: "old",
                site: "s",
                capabilities: &old,
            }];
            if !old_only {
                list.push(ConnectedAgent {
                    agent: "new",
                    site: "s",
                    capabilities: &os,
                });
            }
            list
        };
        let needs_os = admission.enqueue("s", Some("h"), None, Some("os"));
        // Only an old agent: the job waits rather than reach an agent that does not know it.
        assert!(admission.grant(&connected(true)).is_empty());
        assert_eq!(admission.queue_depth("s"), 1);
        let echo = admission.enqueue("s", None, None, Some("echo"));
        let grants = admission.grant(&connected(false));
        let by_ticket: HashMap<_, _> = grants
            .iter()
            .map(|grant| (grant.ticket, grant.agent.as_str()))
            .collect();
        assert_eq!(by_ticket.get(&needs_os), Some(&"new"));
        // The least loaded capable agent: "old" had nothing in flight.
        assert_eq!(by_ticket.get(&echo), Some(&"old"));
    }
}
