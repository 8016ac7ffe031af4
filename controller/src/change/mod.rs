//! The crash-safe change core, shared by every engine that changes a credential on a remote
//! system whose answer can be lost: an OS password today; a database static role, a directory
//! password, a library check-in, a root rotation, a dynamic SSH key next.
//!
//! Sans-IO, in the manner of quinn-proto: the engine's executor feeds events in
//! ([`Change::handle`], [`Change::handle_timeout`]) and carries out the actions that come out
//! ([`Change::poll_action`]), sleeping until [`Change::poll_timeout`] when there is none. Time
//! is only the `now` the caller passes, so tests drive it on a fake clock.
//!
//! Owns the rule that never loses a credential: a candidate is sealed (written ahead) before
//! its job is submitted; an answer "changed" commits it; an answer certainly "not changed"
//! drops it and asks for a retry, after a backoff, with a fresh candidate; anything else (the
//! answer lost, the agent lost, the agent itself unsure) reads the agent's journal and then
//! probes the target, looking three times before believing that neither the candidate nor the
//! current credential works. The proof that allows a commit ([`Confirmed`]) is made only here.
//!
//! Must not touch the store, the network or a clock; must not know any engine's job kinds:
//! [`ChangeTarget`] is how an engine plugs in.

use std::time::{Duration, Instant};

use rotor_common::ids::JobId;
use rotor_common::wire::{JobKind, JobOutcome};

#[cfg(test)]
mod tests;

/// How an engine plugs into the core: how to build the change job and the probe, how to read
/// their answers for this one target, and how to name the target in errors. An engine that
/// batches several targets into one job (the OS engine: a parent's children) builds the batch
/// job itself; each target still reads its own part of the answer.
pub trait ChangeTarget {
    /// The new credential (a password, a key).
    type Candidate: Clone;
    /// The target in words for errors and logs, e.g. "account root on host web-1".
    fn describe(&self) -> String;
    /// The job that makes the change, under `job` (the id sealed with the candidate).
    fn change_job(&self, job: JobId, candidate: &Self::Candidate) -> JobKind;
    /// What the change job's outcome says about this target.
    fn read_answer(&self, outcome: &JobOutcome) -> Answer;
    /// The job that tells which credential works now (the candidate, or the current one).
    fn probe_job(&self, candidate: &Self::Candidate) -> JobKind;
    /// What a probe's outcome says.
    fn read_probe(&self, outcome: &JobOutcome) -> ProbeAnswer;
}

/// What the change job's answer says about one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The target has the candidate.
    Changed,
    /// Certainly nothing changed (never run, refused before the change, the target said so).
    NotChanged(String),
    /// Nobody knows: the answer was lost, the agent was lost, or the agent itself is unsure.
    Unknown(String),
}

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAnswer {
    /// The candidate works: the change happened.
    CandidateWorks,
    /// The current credential still works: the change did not happen.
    CurrentWorks,
    /// Neither works (a change may still be landing; believed only after a few looks).
    NeitherWorks,
    /// The probe itself could not be made (target unreachable...).
    CouldNotTell(String),
}

/// What happened, for the machine.
#[derive(Debug, Clone)]
pub enum Event<C> {
    /// The executor durably recorded `candidate` as pending under the change's job id.
    Sealed(C),
    /// Recording the candidate failed: nothing was sent anywhere.
    SealFailed(String),
    /// The change job ended (see [`Answer`]).
    Answered(Answer),
    /// The agent's journal entry for the change's job: `None` when no agent reported one.
    Journal(Option<Answer>),
    /// A probe ended.
    Probed(ProbeAnswer),
}

/// What the executor must do next.
#[derive(Debug)]
pub enum Action<C> {
    /// Make a fresh candidate and record it as pending under `job`, in one durable write;
    /// then feed [`Event::Sealed`] (or [`Event::SealFailed`]).
    Seal { job: JobId },
    /// Send the change job under `job`; feed [`Event::Answered`].
    Submit { job: JobId, candidate: C },
    /// Record (visibly) that the outcome is unknown and is being settled.
    MarkVerifying { detail: String },
    /// Read the agent's journal for `job`; feed [`Event::Journal`].
    ReadJournal { job: JobId },
    /// Probe which credential works; feed [`Event::Probed`].
    Probe { candidate: C, look: u32 },
    /// Commit the candidate: the target has it, and this is the proof. Ends the change.
    Commit(Confirmed<C>),
    /// Forget the candidate: the target certainly kept the current credential. Retry after
    /// `retry_after` with a fresh candidate. Ends the change.
    Drop {
        reason: String,
        retry_after: Duration,
        /// How the machine knows (for logs and metrics).
        known_by: Knowledge,
    },
    /// Neither credential works: mark the target out of sync, loudly. Ends the change.
    OutOfSync { detail: String },
    /// The probe could not tell: leave the candidate pending (visible as verifying) for a
    /// later recovery pass, which resumes the change. Ends this drive, not the change.
    Park { detail: String },
}

/// How a commit or drop was learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Knowledge {
    /// The change job's own answer.
    Answer,
    /// The agent's journal, read after the answer was lost.
    Journal,
    /// A probe of the target.
    Probe,
    /// Nothing was ever sent.
    NeverSent,
}

impl Knowledge {
    pub fn name(self) -> &'static str {
        match self {
            Knowledge::Answer => "answer",
            Knowledge::Journal => "agent_journal",
            Knowledge::Probe => "probe",
            Knowledge::NeverSent => "never_sent",
        }
    }
}

/// Proof that the target has this candidate: the target said so, its agent journaled that it
/// did, or a probe with it worked. Made only by [`Change`]; committing requires one.
pub struct Confirmed<C> {
    value: C,
    known_by: Knowledge,
}

impl<C> Confirmed<C> {
    /// The confirmed credential.
    pub fn value(&self) -> &C {
        &self.value
    }
    /// How it was confirmed.
    pub fn known_by(&self) -> Knowledge {
        self.known_by
    }
    /// A proof for tests of the code that consumes one (committing), never for production.
    #[cfg(test)]
    pub fn for_tests(value: C) -> Self {
        Self {
            value,
            known_by: Knowledge::Answer,
        }
    }
}

impl<C> std::fmt::Debug for Confirmed<C> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "Confirmed(by {})", self.known_by.name())
    }
}

/// How an engine's changes behave in time.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Probes answering "neither works" before it is believed.
    pub neither_looks: u32,
    /// The wait between those looks (a lost change job may still be landing).
    pub look_gap: Duration,
    /// The first retry after a certain failure; doubles per failure before it.
    pub backoff_base: Duration,
    /// The longest retry wait.
    pub backoff_cap: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            neither_looks: 3,
            look_gap: Duration::from_secs(5),
            backoff_base: Duration::from_secs(60),
            backoff_cap: Duration::from_secs(3600),
        }
    }
}

impl Policy {
    /// The wait before retrying after `failed_attempts` certain failures (this one included
    /// or not: the count the store held when the change began).
    pub fn backoff(&self, failed_attempts: u32) -> Duration {
        self.backoff_base
            .saturating_mul(1u32 << failed_attempts.min(6))
            .min(self.backoff_cap)
    }
}

/// Where a change is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Nothing recorded yet: next, seal.
    Unsealed,
    /// Sealed; the job is (about to be) submitted.
    Submitted,
    /// The outcome is unknown: the agent's journal is being read.
    ReadingJournal,
    /// A probe is out (look `n`, from 1).
    Probing(u32),
    /// Between two looks that found neither credential working.
    BetweenLooks(u32),
    /// Over: see [`Change::end`].
    Ended(End),
}

/// How a change ended (or stopped, for [`End::Parked`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The candidate was committed with proof.
    Committed,
    /// The candidate was dropped: the target certainly kept the current credential.
    Dropped,
    /// Neither credential works; the target is marked out of sync.
    OutOfSync,
    /// The probe could not tell; the candidate stays pending for a later pass.
    Parked,
}

/// One change to one target, from seal to an end.
#[derive(Debug)]
pub struct Change<C> {
    job: JobId,
    phase: Phase,
    candidate: Option<C>,
    failed_attempts: u32,
    policy: Policy,
    /// When the next look is due, in [`Phase::BetweenLooks`].
    next_look: Option<Instant>,
    actions: std::collections::VecDeque<Action<C>>,
}

impl<C: Clone> Change<C> {
    /// A new change under `job`; its first action is [`Action::Seal`]. `failed_attempts` is
    /// how many certain failures preceded it (for the backoff).
    pub fn start(job: JobId, failed_attempts: u32, policy: Policy) -> Self {
        let mut change = Self::blank(job, failed_attempts, policy, Phase::Unsealed, None);
        change.actions.push_back(Action::Seal { job });
        change
    }

    /// A change found pending in the store (after a restart, or left parked): `candidate` was
    /// sealed under `job`. Its first action reads the agent's journal, then it probes.
    pub fn resume(job: JobId, candidate: C, failed_attempts: u32, policy: Policy) -> Self {
        let mut change = Self::blank(
            job,
            failed_attempts,
            policy,
            Phase::ReadingJournal,
            Some(candidate),
        );
        change.actions.push_back(Action::ReadJournal { job });
        change
    }

    fn blank(
        job: JobId,
        failed_attempts: u32,
        policy: Policy,
        phase: Phase,
        candidate: Option<C>,
    ) -> Self {
        Self {
            job,
            phase,
            candidate,
            failed_attempts,
            policy,
            next_look: None,
            actions: Default::default(),
        }
    }

    /// The job id sealed with the candidate: the one the agent runs and journals.
    pub fn job(&self) -> JobId {
        self.job
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// How the change ended, once it has.
    pub fn end(&self) -> Option<End> {
        match self.phase {
            Phase::Ended(end) => Some(end),
            _ => None,
        }
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<Action<C>> {
        self.actions.pop_front()
    }

    /// When [`Change::handle_timeout`] is due, if the machine waits for time.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_look
    }

    /// Time has come (`now` ≥ [`Change::poll_timeout`]): the next look.
    pub fn handle_timeout(&mut self, now: Instant) {
        let (Phase::BetweenLooks(looked), Some(due)) = (self.phase, self.next_look) else {
            return;
        };
        if now < due {
            return;
        }
        self.next_look = None;
        self.probe(looked + 1);
    }

    /// Feeds what happened. An event the phase does not expect is ignored (a late answer
    /// after the machine moved on changes nothing it decided).
    pub fn handle(&mut self, event: Event<C>, now: Instant) {
        match (self.phase, event) {
            (Phase::Unsealed, Event::Sealed(candidate)) => {
                self.candidate = Some(candidate.clone());
                self.phase = Phase::Submitted;
                self.actions.push_back(Action::Submit {
                    job: self.job,
                    candidate,
                });
            }
            (Phase::Unsealed, Event::SealFailed(reason)) => {
                self.drop_candidate(reason, Knowledge::NeverSent);
            }
            (Phase::Submitted, Event::Answered(answer)) => self.answered(answer, Knowledge::Answer),
            (Phase::ReadingJournal, Event::Journal(Some(answer))) => {
                self.answered(answer, Knowledge::Journal)
            }
            (Phase::ReadingJournal, Event::Journal(None)) => self.probe(1),
            (Phase::Probing(look), Event::Probed(answer)) => self.probed(look, answer, now),
            _ => {}
        }
    }

    fn answered(&mut self, answer: Answer, known_by: Knowledge) {
        match answer {
            Answer::Changed => self.commit(known_by),
            Answer::NotChanged(reason) => self.drop_candidate(reason, known_by),
            Answer::Unknown(detail) if self.phase == Phase::Submitted => {
                self.actions.push_back(Action::MarkVerifying { detail });
                self.phase = Phase::ReadingJournal;
                self.actions
                    .push_back(Action::ReadJournal { job: self.job });
            }
            // The journal itself says the agent did not know: only a probe tells.
            Answer::Unknown(_) => self.probe(1),
        }
    }

    fn probed(&mut self, look: u32, answer: ProbeAnswer, now: Instant) {
        match answer {
            ProbeAnswer::CandidateWorks => self.commit(Knowledge::Probe),
            ProbeAnswer::CurrentWorks => self.drop_candidate(
                "the change did not happen (the current credential still works)".into(),
                Knowledge::Probe,
            ),
            ProbeAnswer::NeitherWorks if look < self.policy.neither_looks => {
                self.phase = Phase::BetweenLooks(look);
                self.next_look = Some(now + self.policy.look_gap);
            }
            ProbeAnswer::NeitherWorks => {
                self.phase = Phase::Ended(End::OutOfSync);
                self.actions.push_back(Action::OutOfSync {
                    detail: format!(
                        "neither the new nor the current credential works ({look} looks)"
                    ),
                });
            }
            ProbeAnswer::CouldNotTell(reason) => {
                self.phase = Phase::Ended(End::Parked);
                self.actions.push_back(Action::Park { detail: reason });
            }
        }
    }

    fn probe(&mut self, look: u32) {
        match self.candidate.clone() {
            Some(candidate) => {
                self.phase = Phase::Probing(look);
                self.actions.push_back(Action::Probe { candidate, look });
            }
            // Unreachable by construction (a probe follows a seal or a resume); parking keeps
            // whatever the store holds rather than guessing.
            None => {
                self.phase = Phase::Ended(End::Parked);
                self.actions.push_back(Action::Park {
                    detail: "no candidate to probe with".into(),
                });
            }
        }
    }

    fn commit(&mut self, known_by: Knowledge) {
        match self.candidate.take() {
            Some(value) => {
                self.phase = Phase::Ended(End::Committed);
                self.actions
                    .push_back(Action::Commit(Confirmed { value, known_by }));
            }
            None => self.probe(1),
        }
    }

    fn drop_candidate(&mut self, reason: String, known_by: Knowledge) {
        self.candidate = None;
        self.phase = Phase::Ended(End::Dropped);
        self.actions.push_back(Action::Drop {
            reason,
            retry_after: self.policy.backoff(self.failed_attempts),
            known_by,
        });
    }
}
