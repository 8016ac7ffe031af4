//! Group commit: many writers, one fsync.
//!
//! Every write transaction commits without syncing (redb's `Durability::None`), then waits
//! here until a durable commit that began after its own commit has finished: only then does
//! [`super::Store::write`] return. One writer at a time leads (runs an empty durable commit,
//! which persists every earlier commit); the others wait for it and share its fsync. So a
//! write is durable before its caller acts on it, exactly as with one fsync per transaction,
//! but a burst of writers pays for one sync instead of one each.
//!
//! Owns the ticket counter and the barrier only; must not run writers' work or decide what is
//! written.

use std::sync::{Condvar, Mutex, PoisonError};

use redb::{Database, Durability};

use super::StoreError;

#[derive(Default)]
struct Tickets {
    /// Tickets handed out: one per finished non-durable commit.
    committed: u64,
    /// Every ticket up to this one is durable.
    durable: u64,
    /// A leader is running a durable commit.
    syncing: bool,
    /// Durable commits run (for tests and curiosity).
    syncs: u64,
}

#[derive(Default)]
pub struct GroupCommit {
    tickets: Mutex<Tickets>,
    synced: Condvar,
}

impl GroupCommit {
    /// Blocks until the commit its caller has just finished is durable. Call it after every
    /// non-durable commit, before acting on what was written.
    pub fn make_durable(&self, database: &Database) -> Result<(), StoreError> {
        let mut tickets = self.lock();
        tickets.committed += 1;
        let mine = tickets.committed;
        loop {
            if tickets.durable >= mine {
                return Ok(());
            }
            if tickets.syncing {
                tickets = self
                    .synced
                    .wait(tickets)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // Lead: every ticket handed out so far belongs to a commit that finished before
            // the durable commit below begins, so that commit persists them all.
            tickets.syncing = true;
            let target = tickets.committed;
            drop(tickets);
            let result = durable_commit(database);
            tickets = self.lock();
            tickets.syncing = false;
            if result.is_ok() {
                tickets.durable = tickets.durable.max(target);
                tickets.syncs += 1;
            }
            // Waiters re-check: on success they are done, on failure one of them leads anew.
            self.synced.notify_all();
            result?;
        }
    }

    /// How many durable commits have run.
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tickets> {
        self.tickets.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An empty transaction committed durably: redb then persists every earlier non-durable one.
fn durable_commit(database: &Database) -> Result<(), StoreError> {
    let mut transaction = database.begin_write()?;
    transaction
        .set_durability(Durability::Immediate)
        .map_err(|error| StoreError::Database(error.into()))?;
    transaction.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::sync::Arc;

    use crate::store::{Sealer, Store, Table};

    const CHILD_DIR: &str = "ROTOR_GROUP_COMMIT_CHILD_DIR";

    fn write_from_threads(store: &Arc<Store>, threads: usize, each: usize, announce: bool) {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for n in 0..each {
                        let key = format!("t{thread}-{n}");
                        store
                            .write(|tx| tx.put(Table::Tokens, &key, &n))
                            .expect("write");
                        if announce {
                            // One line per acknowledged write, flushed at once.
                            println!("acked {key}");
                        }
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().expect("writer thread");
        }
    }

    #[test]
    fn concurrent_writers_share_syncs_and_every_write_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rotor.redb");
        let store = Arc::new(Store::open(&path, Sealer::ephemeral()).expect("open"));
        let before = store.syncs();
        write_from_threads(&store, 8, 50, false);
        let syncs = store.syncs() - before;
        assert!(syncs >= 1, "no durable commit ran");
        assert!(syncs <= 400, "more syncs ({syncs}) than writes");
        drop(store);
        let reopened = Store::open(&path, Sealer::ephemeral()).expect("reopen");
        let kept = reopened
            .scan::<usize>(Table::Tokens, "t")
            .expect("scan")
            .len();
        assert_eq!(kept, 400);
    }

    /// Run as a child process by the test below: writes until it is killed.
    #[test]
    fn child_writes_until_killed() {
        let Some(dir) = std::env::var_os(CHILD_DIR) else {
            return; // Only meaningful as the child of the kill test.
        };
        let path = std::path::Path::new(&dir).join("rotor.redb");
        let store = Arc::new(Store::open(&path, Sealer::ephemeral()).expect("open"));
        write_from_threads(&store, 4, 100_000, true);
    }

    #[test]
    fn a_write_acknowledged_before_kill_9_survives_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "store::group_commit::tests::child_writes_until_killed",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("child");
        let stdout = child.stdout.take().expect("child stdout");
        let mut acked = Vec::new();
        let mut lines = BufReader::new(stdout).lines();
        while acked.len() < 300 {
            let Some(Ok(line)) = lines.next() else {
                panic!("the child stopped after {} writes", acked.len());
            };
            if let Some(key) = line.strip_prefix("acked ") {
                acked.push(key.to_string());
            }
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        // Acknowledgements already in the pipe were also written before the kill.
        for line in lines.map_while(Result::ok) {
            if let Some(key) = line.strip_prefix("acked ") {
                acked.push(key.to_string());
            }
        }
        let store =
            Store::open(&dir.path().join("rotor.redb"), Sealer::ephemeral()).expect("reopen");
        for key in &acked {
            assert!(
                store
                    .get::<usize>(Table::Tokens, key)
                    .expect("get")
                    .is_some(),
                "write {key} was acknowledged but lost by kill -9 ({} acknowledged)",
                acked.len()
            );
        }
    }
}
