//! The journal: outcomes of jobs, kept on disk until the controller acknowledges them.
//!
//! Owns `journal.json` in the agent directory. A job whose id is already journaled is not
//! run again: its recorded result is answered instead (delivery is idempotent). A result is
//! written (fsync) before it is sent, so an agent crash after a change never loses what
//! happened. Must not run jobs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rotor_common::ids::JobId;
use rotor_common::wire::JobResult;
use serde::{Deserialize, Serialize};

use crate::identity::{IdentityError, write_atomic};

const JOURNAL_FILE: &str = "journal.json";

#[derive(Default, Serialize, Deserialize)]
struct Entries {
    /// By job id (hex).
    results: BTreeMap<String, JobResult>,
}

pub struct Journal {
    dir: PathBuf,
    /// A std mutex: held only while reading or rewriting the small file.
    entries: Mutex<Entries>,
    /// Results whose job stream was gone when they were ready: sent on the next link's
    /// control stream (in memory; a restart reports every entry in its `Hello` anyway).
    unsent: Mutex<Vec<JobId>>,
}

impl Journal {
    pub fn open(dir: &Path) -> Result<Self, IdentityError> {
        let path = dir.join(JOURNAL_FILE);
        let entries = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|error| IdentityError::Unreadable {
                dir: dir.display().to_string(),
                file: JOURNAL_FILE,
                detail: format!("{error}; move it aside to start a fresh journal"),
            })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Entries::default(),
            Err(error) => {
                return Err(IdentityError::Unreadable {
                    dir: dir.display().to_string(),
                    file: JOURNAL_FILE,
                    detail: error.to_string(),
                });
            }
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            entries: Mutex::new(entries),
            unsent: Mutex::new(Vec::new()),
        })
    }

    fn persist(&self, entries: &Entries) -> Result<(), IdentityError> {
        let text = serde_json::to_vec(entries).unwrap_or_default();
        write_atomic(&self.dir, JOURNAL_FILE, &text, 0o600)
    }

    pub fn recorded(&self, id: JobId) -> Option<JobResult> {
        let entries = self.entries.lock().ok()?;
        entries.results.get(&id.to_string()).cloned()
    }

    /// Records a result durably before it is sent.
    pub fn record(&self, result: &JobResult) -> Result<(), IdentityError> {
        let mut entries = self.entries.lock().map_err(|_| IdentityError::Write {
            dir: self.dir.display().to_string(),
            file: JOURNAL_FILE,
            detail: "journal lock poisoned".into(),
        })?;
        entries
            .results
            .insert(result.id.to_string(), result.clone());
        self.persist(&entries)
    }

    /// Marks a journaled result as not delivered on its job stream.
    pub fn mark_unsent(&self, id: JobId) {
        if let Ok(mut unsent) = self.unsent.lock()
            && !unsent.contains(&id)
        {
            unsent.push(id);
        }
    }

    /// Takes the undelivered results still journaled (unacknowledged), to send them now.
    pub fn take_unsent(&self) -> Vec<JobResult> {
        let ids = match self.unsent.lock() {
            Ok(mut unsent) => std::mem::take(&mut *unsent),
            Err(_) => return Vec::new(),
        };
        ids.into_iter().filter_map(|id| self.recorded(id)).collect()
    }

    /// Forgets results the controller has acknowledged.
    pub fn acknowledge(&self, ids: &[JobId]) -> Result<(), IdentityError> {
        let Ok(mut entries) = self.entries.lock() else {
            return Ok(());
        };
        let before = entries.results.len();
        for id in ids {
            entries.results.remove(&id.to_string());
        }
        if entries.results.len() != before {
            self.persist(&entries)?;
        }
        Ok(())
    }

    /// How many results wait for an acknowledgement (for the agent's metrics; no copies).
    pub fn unacknowledged_count(&self) -> usize {
        self.entries
            .lock()
            .map(|entries| entries.results.len())
            .unwrap_or_default()
    }

    pub fn unacknowledged(&self) -> Vec<JobResult> {
        self.entries
            .lock()
            .map(|entries| entries.results.values().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotor_common::wire::JobOutcome;

    #[test]
    fn a_result_whose_stream_was_gone_is_taken_once_while_unacknowledged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = Journal::open(dir.path()).expect("open");
        let (late, acknowledged) = (JobId::generate(), JobId::generate());
        for id in [late, acknowledged] {
            journal
                .record(&JobResult {
                    id,
                    outcome: JobOutcome::Echo { payload: vec![1] },
                })
                .expect("record");
            journal.mark_unsent(id);
        }
        journal.mark_unsent(late);
        // Acknowledged meanwhile (a Hello carried it): not sent again.
        journal.acknowledge(&[acknowledged]).expect("ack");
        let taken: Vec<JobId> = journal.take_unsent().iter().map(|r| r.id).collect();
        assert_eq!(taken, [late]);
        assert!(journal.take_unsent().is_empty(), "taken once");
        // Still journaled until the controller acknowledges it.
        assert!(journal.recorded(late).is_some());
    }

    #[test]
    fn results_survive_reopen_until_acknowledged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = JobId::generate();
        let journal = Journal::open(dir.path()).expect("open");
        journal
            .record(&JobResult {
                id,
                outcome: JobOutcome::Echo { payload: vec![1] },
            })
            .expect("record");
        drop(journal);
        let journal = Journal::open(dir.path()).expect("reopen");
        assert!(journal.recorded(id).is_some());
        assert_eq!(journal.unacknowledged().len(), 1);
        assert_eq!(journal.unacknowledged_count(), 1);
        journal.acknowledge(&[id]).expect("ack");
        drop(journal);
        let journal = Journal::open(dir.path()).expect("reopen");
        assert!(journal.recorded(id).is_none());
    }
}
