//! The os engine's due-time index: every account that rotates by itself, keyed by when it is
//! next due, so the scheduler reads only the accounts due by now instead of scanning all.
//!
//! Keys are `<due unix seconds:020>/<account key>` in the store's `accounts_due` table. An
//! account is indexed when it rotates on its own (`rotation_period` or `rotation_schedule`,
//! not lazy, automated rotation not disabled) at [`crate::scheduler::next_rotation`]. Every
//! write of an account goes through [`put_account`] (and a delete through
//! [`delete_account`]), which moves the entry in the same transaction, so the index never
//! disagrees with the records. A store from before the index gets it built once at start
//! ([`ensure_built`]).
//!
//! The same writes keep the accounts' counts by status (one `meta` row, moved in the same
//! transaction as the account), so `sys/metrics` reads four numbers instead of scanning.
//!
//! Owns the index's keys and the counts' row. Must not decide whether an account is due: the scheduler's `due`
//! judges every account the index hands it (a pending, failing or out-of-sync account keeps
//! its entry and is looked at again each pass).

use super::model::{AccountRecord, AccountStatus};
use crate::store::{Store, StoreResult, Table, WriteTx};

/// Marks a store whose index has been built (stores from before it had none).
const BUILT_MARKER: &str = "os-due-index-built";
/// The accounts' counts by status, in [`STATUSES`] order (a `meta` row).
const STATUS_COUNTS: &str = "os-accounts-by-status";
/// Marks a store whose counts have been built (stores from before them had none).
const COUNTS_BUILT_MARKER: &str = "os-accounts-by-status-built";

/// The order of the counts.
pub const STATUSES: [AccountStatus; 4] = [
    AccountStatus::InSync,
    AccountStatus::Rotating,
    AccountStatus::Verifying,
    AccountStatus::OutOfSync,
];

fn status_slot(status: AccountStatus) -> usize {
    match status {
        AccountStatus::InSync => 0,
        AccountStatus::Rotating => 1,
        AccountStatus::Verifying => 2,
        AccountStatus::OutOfSync => 3,
    }
}

/// Moves one account from `old` to `new` in the counts, in the caller's transaction.
fn recount(
    tx: &WriteTx<'_>,
    old: Option<AccountStatus>,
    new: Option<AccountStatus>,
) -> StoreResult<()> {
    if old == new {
        return Ok(());
    }
    let mut counts = tx
        .get::<[u64; 4]>(Table::Meta, STATUS_COUNTS)?
        .unwrap_or_default();
    if let Some(old) = old {
        let slot = &mut counts[status_slot(old)];
        *slot = slot.saturating_sub(1);
    }
    if let Some(new) = new {
        counts[status_slot(new)] += 1;
    }
    tx.put(Table::Meta, STATUS_COUNTS, &counts)
}

/// The accounts' counts by status ([`STATUSES`] order), or None for a store whose counts
/// are not built yet (then a scan must count).
pub fn status_counts(store: &Store) -> StoreResult<Option<[u64; 4]>> {
    store.read(|tx| {
        if !tx
            .get::<bool>(Table::Meta, COUNTS_BUILT_MARKER)?
            .unwrap_or(false)
        {
            return Ok(None);
        }
        Ok(Some(
            tx.get::<[u64; 4]>(Table::Meta, STATUS_COUNTS)?
                .unwrap_or_default(),
        ))
    })
}

/// The index key of `account` (stored at `account_key`), if it rotates by itself.
pub fn index_key(account_key: &str, account: &AccountRecord) -> Option<String> {
    if account.lazy_rotation {
        return None;
    }
    crate::scheduler::next_rotation(account).map(|due| format!("{due:020}/{account_key}"))
}

/// The first key after every entry due at `now` or before.
pub fn upper_bound(now: u64) -> String {
    format!("{:020}/", now.saturating_add(1))
}

/// The account key an index key points at.
pub fn account_key_of(index_key: &str) -> Option<&str> {
    index_key.split_once('/').map(|(_, key)| key)
}

/// Writes `account` at `key` and moves its index entry, in the caller's transaction.
pub fn put_account(tx: &WriteTx<'_>, key: &str, account: &AccountRecord) -> StoreResult<()> {
    let previous = tx.get::<AccountRecord>(Table::Accounts, key)?;
    recount(
        tx,
        previous.as_ref().map(|old| old.status),
        Some(account.status),
    )?;
    let old = previous.and_then(|old| index_key(key, &old));
    let new = index_key(key, account);
    if old != new {
        if let Some(old) = old {
            tx.delete(Table::AccountsDue, &old)?;
        }
        if let Some(new) = &new {
            tx.put(Table::AccountsDue, new, &true)?;
        }
    }
    tx.put(Table::Accounts, key, account)
}

/// Deletes the account at `key` and its index entry, in the caller's transaction.
pub fn delete_account(tx: &WriteTx<'_>, key: &str) -> StoreResult<()> {
    let previous = tx.get::<AccountRecord>(Table::Accounts, key)?;
    recount(tx, previous.as_ref().map(|old| old.status), None)?;
    if let Some(old) = previous.and_then(|old| index_key(key, &old)) {
        tx.delete(Table::AccountsDue, &old)?;
    }
    tx.delete(Table::Accounts, key)?;
    Ok(())
}

/// Builds the index from the accounts once, for a store written before it existed. One
/// transaction: writers wait for it, and none can slip between the scan and the marker.
pub fn ensure_built(store: &Store) -> StoreResult<usize> {
    ensure_counts_built(store)?;
    if store
        .get::<bool>(Table::Meta, BUILT_MARKER)?
        .unwrap_or(false)
    {
        return Ok(0);
    }
    store.write(|tx| {
        if tx.get::<bool>(Table::Meta, BUILT_MARKER)?.unwrap_or(false) {
            return Ok(0);
        }
        for (key, _) in tx.scan::<bool>(Table::AccountsDue, "")? {
            tx.delete(Table::AccountsDue, &key)?;
        }
        let mut indexed = 0;
        for (key, account) in tx.scan::<AccountRecord>(Table::Accounts, "")? {
            if let Some(entry) = index_key(&key, &account) {
                tx.put(Table::AccountsDue, &entry, &true)?;
                indexed += 1;
            }
        }
        tx.put(Table::Meta, BUILT_MARKER, &true)?;
        Ok(indexed)
    })
}

/// Counts the accounts by status once, for a store written before the counts existed. One
/// transaction, like the index's build.
fn ensure_counts_built(store: &Store) -> StoreResult<()> {
    if store
        .get::<bool>(Table::Meta, COUNTS_BUILT_MARKER)?
        .unwrap_or(false)
    {
        return Ok(());
    }
    store.write(|tx| {
        if tx
            .get::<bool>(Table::Meta, COUNTS_BUILT_MARKER)?
            .unwrap_or(false)
        {
            return Ok(());
        }
        let mut counts = [0u64; 4];
        for (_, account) in tx.scan::<AccountRecord>(Table::Accounts, "")? {
            counts[status_slot(account.status)] += 1;
        }
        tx.put(Table::Meta, STATUS_COUNTS, &counts)?;
        tx.put(Table::Meta, COUNTS_BUILT_MARKER, &true)
    })
}

/// Every account due at `now` or before, by the index, in due order: `visit` gets each
/// record (an entry whose record is gone is skipped). Costs the number of due accounts, not
/// the number of accounts.
pub fn for_each_due(
    store: &Store,
    now: u64,
    mut visit: impl FnMut(&str, AccountRecord) -> StoreResult<()>,
) -> StoreResult<()> {
    crate::store::off_worker(|| {
        store.read(|tx| {
            tx.for_each_below::<bool>(Table::AccountsDue, &upper_bound(now), |entry, _| {
                let Some(key) = account_key_of(entry) else {
                    return Ok(());
                };
                match tx.get::<AccountRecord>(Table::Accounts, key)? {
                    Some(account) => visit(key, account),
                    None => Ok(()),
                }
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::os::model::{
        self, PasswordConfirmed, account_key, create_account, delete_account as delete,
    };
    use crate::store::Sealer;
    use rotor_common::secret::Password;

    const MOUNT: &str = "os/";

    fn entries(store: &Store) -> Vec<String> {
        store
            .scan::<bool>(Table::AccountsDue, "")
            .expect("scan")
            .into_iter()
            .map(|(key, _)| key)
            .collect()
    }

    fn periodic(name: &str, created: u64, period: u64) -> AccountRecord {
        let mut account = AccountRecord::new("h1", name);
        account.created_unix = created;
        account.rotation_period_secs = Some(period);
        account
    }

    #[test]
    fn every_account_write_keeps_its_entry_in_step() {
        let store = Store::in_memory(Sealer::ephemeral()).expect("store");
        let key = account_key(MOUNT, "h1", "app");
        create_account(
            &store,
            MOUNT,
            periodic("app", 1_000, 60),
            &Password::new("v1".to_string()),
        )
        .expect("created");
        assert_eq!(entries(&store), vec![format!("{:020}/{key}", 1_060)]);

        // A rotation commits: the next due time moves to a period after it.
        model::record_pending_candidates(
            &store,
            MOUNT,
            "h1",
            "job-1",
            &[("app".to_string(), Password::new("v2".to_string()))],
        )
        .expect("pending");
        let proof = PasswordConfirmed::for_tests(Password::new("v2".to_string()));
        model::commit_confirmed(&store, MOUNT, "h1", "app", proof).expect("committed");
        let account = model::get_account(&store, MOUNT, "h1", "app")
            .expect("read")
            .expect("there");
        let rotated = account.last_vault_rotation_unix.expect("rotated at");
        assert_eq!(entries(&store), vec![format!("{:020}/{key}", rotated + 60)]);

        // Lazy, or automation off: not the scheduler's, so not indexed.
        let mut lazy = account.clone();
        lazy.lazy_rotation = true;
        store
            .write(|tx| put_account(tx, &key, &lazy))
            .expect("lazy");
        assert!(entries(&store).is_empty());
        let mut off = account.clone();
        off.disable_automated_rotation = true;
        store.write(|tx| put_account(tx, &key, &off)).expect("off");
        assert!(entries(&store).is_empty());
        store
            .write(|tx| put_account(tx, &key, &account))
            .expect("back");
        assert_eq!(entries(&store).len(), 1);

        delete(&store, MOUNT, "h1", "app").expect("deleted");
        assert!(
            entries(&store).is_empty(),
            "a deleted account leaves no entry"
        );
    }

    #[test]
    fn the_counts_by_status_follow_every_account_write() {
        let store = Store::in_memory(Sealer::ephemeral()).expect("store");
        assert_eq!(status_counts(&store).expect("read"), None, "not built yet");
        ensure_built(&store).expect("built");
        let counts = || status_counts(&store).expect("read").expect("built");
        assert_eq!(counts(), [0, 0, 0, 0]);
        for name in ["app", "svc"] {
            create_account(
                &store,
                MOUNT,
                periodic(name, 1_000, 60),
                &Password::new("v1".to_string()),
            )
            .expect("created");
        }
        assert_eq!(counts(), [2, 0, 0, 0]);
        model::record_pending_candidates(
            &store,
            MOUNT,
            "h1",
            "job-1",
            &[("app".to_string(), Password::new("v2".to_string()))],
        )
        .expect("pending");
        assert_eq!(counts(), [1, 1, 0, 0]);
        model::mark_verifying(&store, MOUNT, "h1", "app", "lost").expect("verifying");
        assert_eq!(counts(), [1, 0, 1, 0]);
        model::mark_out_of_sync(&store, MOUNT, "h1", "app", "neither").expect("out of sync");
        assert_eq!(counts(), [1, 0, 0, 1]);
        delete(&store, MOUNT, "h1", "app").expect("deleted");
        assert_eq!(counts(), [1, 0, 0, 0]);

        // A store from before the counts: they are counted once, from the records.
        store
            .write(|tx| {
                tx.delete(Table::Meta, COUNTS_BUILT_MARKER)?;
                tx.delete(Table::Meta, STATUS_COUNTS)
            })
            .expect("forgotten");
        assert_eq!(status_counts(&store).expect("read"), None);
        ensure_built(&store).expect("rebuilt");
        assert_eq!(counts(), [1, 0, 0, 0]);
    }

    #[test]
    fn only_the_accounts_due_by_now_are_read() {
        let store = Store::in_memory(Sealer::ephemeral()).expect("store");
        let now = 1_000_000;
        for index in 0..500 {
            // Due in the future: never read by a pass at `now`.
            create_account(
                &store,
                MOUNT,
                periodic(&format!("later-{index:03}"), now, 3600),
                &Password::new("v1".to_string()),
            )
            .expect("created");
        }
        for (index, overdue) in [10_u64, 5_000, 1].iter().enumerate() {
            create_account(
                &store,
                MOUNT,
                periodic(&format!("due-{index}"), now - 60 - overdue, 60),
                &Password::new("v1".to_string()),
            )
            .expect("created");
        }
        let mut read = Vec::new();
        for_each_due(&store, now, |key, _| {
            read.push(key.to_string());
            Ok(())
        })
        .expect("pass");
        assert_eq!(
            read,
            vec![
                account_key(MOUNT, "h1", "due-1"),
                account_key(MOUNT, "h1", "due-0"),
                account_key(MOUNT, "h1", "due-2"),
            ],
            "the three due accounts, most overdue first, and nothing else"
        );
    }

    #[test]
    fn a_store_from_before_the_index_gets_it_built_once() {
        let store = Store::in_memory(Sealer::ephemeral()).expect("store");
        create_account(
            &store,
            MOUNT,
            periodic("app", 1_000, 60),
            &Password::new("v1".to_string()),
        )
        .expect("created");
        // As an older Rotor left it: accounts, no index, no marker.
        store
            .write(|tx| {
                for (key, _) in tx.scan::<bool>(Table::AccountsDue, "")? {
                    tx.delete(Table::AccountsDue, &key)?;
                }
                Ok::<_, crate::store::StoreError>(())
            })
            .expect("emptied");
        assert!(entries(&store).is_empty());
        assert_eq!(ensure_built(&store).expect("built"), 1);
        assert_eq!(entries(&store).len(), 1);
        assert_eq!(ensure_built(&store).expect("again"), 0, "built once");
    }
}
