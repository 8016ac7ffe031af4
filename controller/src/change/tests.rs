//! The change machine against a simulated target, store and agent journal, on a fake clock:
//! every crash point crossed with "the target did / did not apply the change" ends committed
//! with proof, dropped with certainty, or out of sync and visible; and the target never holds
//! a credential the store does not know.

use super::*;

/// The world outside the machine: what the target really has, what the store holds, what the
/// agent journaled.
#[derive(Debug, Clone)]
struct World {
    target: String,
    current: String,
    pending: Option<(JobId, String)>,
    out_of_sync: bool,
    /// The agent's journal entry for the change's job.
    journal: Option<Answer>,
    /// Whether the target applies the change when the job reaches it.
    applies: bool,
    /// Probes left that find neither credential (a change still landing, or worse).
    neither_for: u32,
    probes: u32,
    next_candidate: u32,
    ends: Vec<&'static str>,
    /// Someone changed the target behind Rotor's back: only "out of sync" can be right.
    tampered: bool,
}

impl World {
    fn new(applies: bool) -> Self {
        Self {
            target: "v1".into(),
            current: "v1".into(),
            pending: None,
            out_of_sync: false,
            journal: None,
            applies,
            neither_for: 0,
            probes: 0,
            next_candidate: 2,
            ends: vec![],
            tampered: false,
        }
    }

    /// Every credential the target can hold is one the store knows, or the store says it is
    /// out of sync.
    fn no_credential_lost(&self) -> bool {
        self.tampered
            || self.target == self.current
            || self
                .pending
                .as_ref()
                .is_some_and(|(_, c)| *c == self.target)
            || self.out_of_sync
    }
}

/// Where the controller dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crash {
    Never,
    BeforeSeal,
    SealedNotSent,
    /// Sent, and the target ran it (or not); the answer never arrived. `journal`: whether the
    /// agent survived with its journal.
    SentNoAnswer {
        journal: bool,
    },
    AnsweredNotCommitted,
    DuringProbe,
}

/// Runs `change` against `world` until it ends, parks, or `crash` stops the controller.
/// Answers whether the controller crashed.
fn drive(
    change: &mut Change<String>,
    world: &mut World,
    crash: Crash,
    clock: &mut Instant,
) -> bool {
    loop {
        let Some(action) = change.poll_action() else {
            match change.poll_timeout() {
                Some(due) => {
                    *clock = due;
                    change.handle_timeout(*clock);
                    continue;
                }
                None => return false,
            }
        };
        match action {
            Action::Seal { job } => {
                if crash == Crash::BeforeSeal {
                    return true;
                }
                let candidate = format!("v{}", world.next_candidate);
                world.next_candidate += 1;
                world.pending = Some((job, candidate.clone()));
                if crash == Crash::SealedNotSent {
                    return true;
                }
                change.handle(Event::Sealed(candidate), *clock);
            }
            Action::Submit { candidate, .. } => {
                let answer = if world.applies {
                    world.target = candidate;
                    Answer::Changed
                } else {
                    Answer::NotChanged("passwd refused the current password".into())
                };
                if let Crash::SentNoAnswer { journal } = crash {
                    world.journal = journal.then_some(answer);
                    return true;
                }
                if crash == Crash::DuringProbe {
                    // The answer and the agent's journal are lost: only a probe tells.
                    change.handle(
                        Event::Answered(Answer::Unknown("agent lost".into())),
                        *clock,
                    );
                    continue;
                }
                world.journal = Some(answer.clone());
                if crash == Crash::AnsweredNotCommitted {
                    return true;
                }
                change.handle(Event::Answered(answer), *clock);
            }
            Action::MarkVerifying { .. } => {}
            Action::ReadJournal { .. } => {
                change.handle(Event::Journal(world.journal.clone()), *clock)
            }
            Action::Probe { candidate, .. } => {
                world.probes += 1;
                if crash == Crash::DuringProbe && world.probes == 1 {
                    return true;
                }
                let answer = if world.neither_for > 0 {
                    world.neither_for -= 1;
                    ProbeAnswer::NeitherWorks
                } else if world.target == candidate {
                    ProbeAnswer::CandidateWorks
                } else if world.target == world.current {
                    ProbeAnswer::CurrentWorks
                } else {
                    ProbeAnswer::NeitherWorks
                };
                change.handle(Event::Probed(answer), *clock);
            }
            Action::Commit(proof) => {
                world.current = proof.value().clone();
                world.pending = None;
                world.ends.push("committed");
            }
            Action::Drop { .. } => {
                world.pending = None;
                world.ends.push("dropped");
            }
            Action::OutOfSync { .. } => {
                world.pending = None;
                world.out_of_sync = true;
                world.ends.push("out_of_sync");
            }
            Action::Park { .. } => world.ends.push("parked"),
        }
        assert!(world.no_credential_lost(), "credential lost: {world:?}");
    }
}

/// Runs one change with a crash at `crash`, then what a restarted controller does: resume
/// whatever is pending. Answers the world and the end.
fn run(crash: Crash, applies: bool) -> World {
    let mut world = World::new(applies);
    let mut clock = Instant::now();
    let mut change = Change::start(JobId::generate(), 0, Policy::default());
    let crashed = drive(&mut change, &mut world, crash, &mut clock);
    if crashed {
        // The restart: the machine's memory is gone; only the store and the journal remain.
        if let Some((job, candidate)) = world.pending.clone() {
            let mut resumed = Change::resume(job, candidate, 0, Policy::default());
            assert!(!drive(&mut resumed, &mut world, Crash::Never, &mut clock));
        } else {
            world.ends.push("never_sealed");
        }
    }
    world
}

#[test]
fn every_crash_point_ends_committed_dropped_or_out_of_sync_and_loses_nothing() {
    let crashes = [
        Crash::Never,
        Crash::BeforeSeal,
        Crash::SealedNotSent,
        Crash::SentNoAnswer { journal: true },
        Crash::SentNoAnswer { journal: false },
        Crash::AnsweredNotCommitted,
        Crash::DuringProbe,
    ];
    for crash in crashes {
        for applies in [true, false] {
            let world = run(crash, applies);
            let end = *world.ends.last().expect("every run ends");
            // What the target ends with is exactly what the store holds as current.
            assert_eq!(
                world.target, world.current,
                "{crash:?} applies={applies}: {world:?}"
            );
            assert!(
                world.pending.is_none(),
                "{crash:?} applies={applies}: {world:?}"
            );
            assert!(!world.out_of_sync, "{crash:?} applies={applies}: {world:?}");
            let reached_target = !matches!(crash, Crash::BeforeSeal | Crash::SealedNotSent);
            let expected = match (reached_target, applies) {
                (false, _) if crash == Crash::BeforeSeal => "never_sealed",
                (true, true) => "committed",
                _ => "dropped",
            };
            assert_eq!(end, expected, "{crash:?} applies={applies}: {world:?}");
        }
    }
}

#[test]
fn the_journal_settles_a_lost_answer_without_a_probe() {
    for applies in [true, false] {
        let world = run(Crash::AnsweredNotCommitted, applies);
        assert_eq!(world.probes, 0, "applies={applies}: {world:?}");
        let world = run(Crash::SentNoAnswer { journal: true }, applies);
        assert_eq!(world.probes, 0, "applies={applies}: {world:?}");
    }
    // Without the journal, only a probe tells; a crash during it means probing again.
    let world = run(Crash::SentNoAnswer { journal: false }, true);
    assert_eq!(world.probes, 1);
    let world = run(Crash::DuringProbe, true);
    assert_eq!(world.probes, 2);
}

#[test]
fn neither_is_believed_only_after_three_looks_a_gap_apart() {
    // A change still landing: two looks find neither, the third finds the candidate.
    let mut world = World::new(true);
    world.neither_for = 2;
    let start = Instant::now();
    let mut clock = start;
    let mut change = Change::start(JobId::generate(), 0, Policy::default());
    // Lose the answer: the agent died with its journal.
    assert!(drive(
        &mut change,
        &mut world,
        Crash::SentNoAnswer { journal: false },
        &mut clock
    ));
    let (job, candidate) = world.pending.clone().expect("sealed");
    let mut resumed = Change::resume(job, candidate, 0, Policy::default());
    drive(&mut resumed, &mut world, Crash::Never, &mut clock);
    assert_eq!(world.ends, ["committed"]);
    assert_eq!(world.probes, 3);
    assert_eq!(clock - start, Policy::default().look_gap * 2);

    // Changed behind Rotor's back: three looks, then out of sync, visibly.
    let mut world = World::new(false);
    let mut clock = Instant::now();
    let mut change = Change::start(JobId::generate(), 0, Policy::default());
    assert!(drive(
        &mut change,
        &mut world,
        Crash::SentNoAnswer { journal: false },
        &mut clock
    ));
    world.target = "set by someone else".into();
    world.tampered = true;
    let (job, candidate) = world.pending.clone().expect("sealed");
    let mut resumed = Change::resume(job, candidate, 0, Policy::default());
    drive(&mut resumed, &mut world, Crash::Never, &mut clock);
    assert_eq!(world.ends, ["out_of_sync"]);
    assert_eq!(world.probes, 3);
    assert!(world.out_of_sync && world.pending.is_none());
    assert_eq!(resumed.end(), Some(End::OutOfSync));
}

#[test]
fn a_probe_that_cannot_tell_parks_the_candidate_and_a_later_pass_settles_it() {
    let mut change = Change::resume(JobId::generate(), "v2".to_string(), 0, Policy::default());
    let now = Instant::now();
    assert!(matches!(
        change.poll_action(),
        Some(Action::ReadJournal { .. })
    ));
    change.handle(Event::Journal(None), now);
    assert!(matches!(
        change.poll_action(),
        Some(Action::Probe { look: 1, .. })
    ));
    change.handle(
        Event::Probed(ProbeAnswer::CouldNotTell("unreachable".into())),
        now,
    );
    assert!(matches!(change.poll_action(), Some(Action::Park { .. })));
    assert_eq!(change.end(), Some(End::Parked));
    // Nothing else happens to a parked change, whatever arrives late.
    change.handle(Event::Probed(ProbeAnswer::CandidateWorks), now);
    assert!(change.poll_action().is_none());
}

#[test]
fn a_certain_failure_drops_with_a_growing_capped_backoff_and_never_reuses_the_candidate() {
    let policy = Policy::default();
    let mut waits = vec![];
    for attempts in [0, 1, 2, 10] {
        let mut change = Change::start(JobId::generate(), attempts, policy);
        let now = Instant::now();
        assert!(matches!(change.poll_action(), Some(Action::Seal { .. })));
        change.handle(Event::Sealed("v2".to_string()), now);
        assert!(matches!(change.poll_action(), Some(Action::Submit { .. })));
        change.handle(Event::Answered(Answer::NotChanged("refused".into())), now);
        match change.poll_action() {
            Some(Action::Drop {
                retry_after,
                known_by,
                ..
            }) => {
                assert_eq!(known_by, Knowledge::Answer);
                waits.push(retry_after.as_secs());
            }
            other => panic!("expected a drop, got {other:?}"),
        }
        // A dropped change is over: a retry is a new change, which seals a fresh candidate.
        assert_eq!(change.end(), Some(End::Dropped));
    }
    assert_eq!(waits, [60, 120, 240, 3600]);
}

#[test]
fn an_unknown_answer_is_marked_then_settled_from_the_journal_first() {
    let mut change = Change::start(JobId::generate(), 0, Policy::default());
    let now = Instant::now();
    let Some(Action::Seal { job }) = change.poll_action() else {
        panic!("seal first")
    };
    change.handle(Event::Sealed("v2".to_string()), now);
    match change.poll_action() {
        Some(Action::Submit { job: sent, .. }) => assert_eq!(sent, job, "the sealed id is sent"),
        other => panic!("expected submit, got {other:?}"),
    }
    change.handle(Event::Answered(Answer::Unknown("agent lost".into())), now);
    assert!(matches!(
        change.poll_action(),
        Some(Action::MarkVerifying { .. })
    ));
    assert!(matches!(change.poll_action(), Some(Action::ReadJournal { job: read }) if read == job));
    change.handle(Event::Journal(Some(Answer::Changed)), now);
    match change.poll_action() {
        Some(Action::Commit(proof)) => {
            assert_eq!(proof.value(), "v2");
            assert_eq!(proof.known_by(), Knowledge::Journal);
        }
        other => panic!("expected a commit, got {other:?}"),
    }
}

#[test]
fn a_seal_that_fails_sends_nothing() {
    let mut change: Change<String> = Change::start(JobId::generate(), 0, Policy::default());
    let now = Instant::now();
    assert!(matches!(change.poll_action(), Some(Action::Seal { .. })));
    change.handle(Event::SealFailed("disk full".into()), now);
    assert!(matches!(
        change.poll_action(),
        Some(Action::Drop {
            known_by: Knowledge::NeverSent,
            ..
        })
    ));
    assert!(change.poll_action().is_none());
}
