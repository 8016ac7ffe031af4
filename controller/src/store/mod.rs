//! The store: the one owner of the redb file.
//!
//! Every table maps a string key to a JSON-encoded record; secret fields inside records are
//! sealed by [`seal::Sealer`] before they reach a table, so the file never holds a secret in
//! clear. Reads and writes go through [`Store::read`] and [`Store::write`], which run a closure
//! in one redb transaction: a multi-row change is atomic or absent, and durable before
//! `write` returns (concurrent writers share one fsync: [`group_commit`]).
//!
//! An I/O failure (a full disk above all) poisons a redb database until it is reopened, so
//! the store closes the database on one and reopens it on the next operation: once space is
//! freed, writes work again without a restart. Until then every failure says what is wrong in
//! words a client can act on ([`StoreError::Unwritable`]), and [`Store::check_writable`] lets
//! `sys/health` report it.
//! Must not hold policy: what a record means belongs to the module that owns the record type.

pub mod group_commit;
pub mod schema;
pub mod seal;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

pub use schema::Table;
pub use seal::{SealError, Sealer};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Open {
        path: String,
        source: redb::DatabaseError,
    },
    #[error("store {path}: {detail}")]
    File { path: String, detail: String },
    #[error(
        "store {path} cannot be written: {detail}; writes resume by themselves once they can succeed"
    )]
    Unwritable { path: String, detail: String },
    #[error("store: {0}")]
    Database(#[from] redb::Error),
    #[error("store record {table}/{key} is unreadable: {detail}")]
    Corrupt {
        table: &'static str,
        key: String,
        detail: String,
    },
    #[error(
        "store schema version {found} was written by a newer Rotor (this one knows up to {known}); upgrade Rotor"
    )]
    TooNew { found: u32, known: u32 },
    #[error(transparent)]
    Seal(#[from] SealError),
}

macro_rules! from_redb {
    ($($error:ty),*) => {$(
        impl From<$error> for StoreError {
            fn from(error: $error) -> Self { StoreError::Database(error.into()) }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

pub type StoreResult<T> = Result<T, StoreError>;

/// redb's page cache (its default is 1 GiB). Hot records (hosts, accounts being rotated,
/// tokens) fit easily; a scan of a very large fleet reads through the OS page cache instead of
/// pinning the whole file in the controller's memory.
const CACHE_BYTES: usize = 256 * 1024 * 1024;

/// Runs `work`, which may block for a while (a scan of a large table, a wait for the write
/// lock or an fsync), without holding up the tokio worker it is called from: on a
/// multi-threaded runtime the worker's other tasks move to another thread first
/// (`block_in_place`). On a current-thread runtime (tests) that is not allowed and nothing
/// competes, so it just runs.
pub fn off_worker<T>(work: impl FnOnce() -> T) -> T {
    let current_thread = tokio::runtime::Handle::try_current().is_ok_and(|handle| {
        handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread
    });
    if current_thread {
        work()
    } else {
        tokio::task::block_in_place(work)
    }
}

/// How long a full scan of a large table that took `took` must wait before it runs again:
/// ten times as long, so repeating it costs at most a tenth of a core (the scheduler rests
/// this long between passes; metrics reuse a count this long).
pub fn rest_after_scan(took: std::time::Duration) -> std::time::Duration {
    took.saturating_mul(10)
}

fn open_file(path: &Path) -> StoreResult<Database> {
    Database::builder()
        .set_cache_size(CACHE_BYTES)
        .create(path)
        .map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })
}

/// Creates the store file owner-only when it is missing, and refuses one readable by others.
fn guard_store_file(path: &Path) -> StoreResult<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file_error = |detail: String| StoreError::File {
        path: path.display().to_string(),
        detail,
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => return Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(file_error(format!("cannot create it: {error}"))),
    }
    let metadata = std::fs::metadata(path).map_err(|error| file_error(error.to_string()))?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(file_error(format!(
            "permissions are {mode:o}; it holds every sealed secret and must be readable by its owner only: chmod 600 {}",
            path.display()
        )));
    }
    Ok(())
}

/// Owns the redb database and the seal key.
pub struct Store {
    /// The open database, `None` after an I/O failure closed it until the next operation
    /// reopens it. A std lock: held only to clone or swap the `Arc`, never across IO.
    current: RwLock<Option<Arc<OpenDatabase>>>,
    /// The file behind the database (`None`: in memory, which cannot be reopened).
    file: Option<PathBuf>,
    sealer: Sealer,
    /// Why storage last failed, until an operation succeeds again: what `sys/health` reports.
    failure: Mutex<Option<String>>,
}

/// One opening of the database and its group commit. A commit's durability ticket belongs
/// to the opening it was made in: after a reopen, a durable commit of the new opening never
/// vouches for a commit the failed one lost.
struct OpenDatabase {
    database: Database,
    group: group_commit::GroupCommit,
}

fn describe_io(io: &std::io::Error) -> String {
    if io.raw_os_error() == Some(28) || io.kind() == std::io::ErrorKind::StorageFull {
        "no space left on its filesystem (disk full): free space there".to_string()
    } else {
        format!("I/O error: {io}")
    }
}

/// What an I/O failure was, for a client: `None` when `error` is not one.
fn io_failure(error: &StoreError) -> Option<String> {
    match error {
        StoreError::Database(redb::Error::Io(io)) => Some(describe_io(io)),
        StoreError::Database(redb::Error::PreviousIo) => {
            Some("an earlier write failed (I/O error); the store is being reopened".to_string())
        }
        _ => None,
    }
}

fn definition(table: Table) -> TableDefinition<'static, &'static str, &'static [u8]> {
    TableDefinition::new(table.name())
}

fn decode<T: DeserializeOwned>(table: Table, key: &str, bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|error| StoreError::Corrupt {
        table: table.name(),
        key: key.to_string(),
        detail: error.to_string(),
    })
}

fn encode<T: Serialize>(table: Table, key: &str, record: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(record).map_err(|error| StoreError::Corrupt {
        table: table.name(),
        key: key.to_string(),
        detail: error.to_string(),
    })
}

impl Store {
    /// Opens (or creates, mode 0600) the store file and brings its schema up to date.
    /// Refuses a file that its group or others can read: it holds every sealed secret, and
    /// with the seal key, every credential.
    pub fn open(path: &Path, sealer: Sealer) -> StoreResult<Self> {
        guard_store_file(path)?;
        let database = open_file(path)?;
        Self::with_database(database, Some(path.to_path_buf()), sealer)
    }

    /// A store that lives only in memory (dev mode and tests).
    pub fn in_memory(sealer: Sealer) -> StoreResult<Self> {
        let database = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|source| StoreError::Open {
                path: "<memory>".into(),
                source,
            })?;
        Self::with_database(database, None, sealer)
    }

    fn with_database(
        database: Database,
        file: Option<PathBuf>,
        sealer: Sealer,
    ) -> StoreResult<Self> {
        let store = Self {
            current: RwLock::new(Some(Arc::new(OpenDatabase {
                database,
                group: group_commit::GroupCommit::default(),
            }))),
            file,
            sealer,
            failure: Mutex::new(None),
        };
        schema::migrate(&store)?;
        Ok(store)
    }

    /// The open database, reopening it when an I/O failure closed it.
    fn database(&self) -> StoreResult<Arc<OpenDatabase>> {
        if let Some(open) = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            return Ok(open.clone());
        }
        let path = self.file.as_deref().unwrap_or(Path::new("<memory>"));
        let mut slot = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = slot.as_ref() {
            return Ok(open.clone());
        }
        // The failed opening's last users may still hold it (and its file lock) for a moment:
        // then this attempt fails and the next operation tries again.
        let database = open_file(path).map_err(|error| {
            let detail = match &error {
                StoreError::Open {
                    source: redb::DatabaseError::Storage(redb::StorageError::Io(io)),
                    ..
                } => describe_io(io),
                _ => error.to_string(),
            };
            StoreError::Unwritable {
                path: path.display().to_string(),
                detail: format!("it is closed after a failure and could not be reopened: {detail}"),
            }
        })?;
        tracing::warn!(path = %path.display(), "store reopened after an I/O failure");
        let open = Arc::new(OpenDatabase {
            database,
            group: group_commit::GroupCommit::default(),
        });
        *slot = Some(open.clone());
        Ok(open)
    }

    /// Passes a storage result through. An I/O failure closes `open` (redb refuses every
    /// later operation on it) so the next operation reopens the file, and is reported as
    /// [`StoreError::Unwritable`] with words a client can act on.
    fn checked<T>(&self, open: &Arc<OpenDatabase>, result: StoreResult<T>) -> StoreResult<T> {
        let error = match result {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let Some(detail) = io_failure(&error) else {
            return Err(error);
        };
        let path = self
            .file
            .as_deref()
            .map(|path| path.display().to_string())
            .unwrap_or_else(|| "<memory>".into());
        tracing::error!(%path, %detail, "store I/O failure: closing the database to reopen it");
        if self.file.is_some() {
            let mut slot = self.current.write().unwrap_or_else(PoisonError::into_inner);
            if slot
                .as_ref()
                .is_some_and(|current| Arc::ptr_eq(current, open))
            {
                *slot = None;
            }
        }
        *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(detail.clone());
        Err(StoreError::Unwritable { path, detail })
    }

    /// Whether the store can write now: `Ok` at once unless a failure was seen, else after a
    /// small durable write proves it (so `sys/health` turns healthy without a restart).
    pub fn check_writable(&self) -> StoreResult<()> {
        let failed = self
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some();
        if !failed {
            return Ok(());
        }
        self.write(|tx| tx.put(Table::Meta, "health-probe", &crate::tokens::now_unix()))
    }

    /// Runs `work` in one read transaction.
    pub fn read<T>(&self, work: impl FnOnce(&ReadTx) -> StoreResult<T>) -> StoreResult<T> {
        let open = self.database()?;
        let transaction =
            self.checked(&open, open.database.begin_read().map_err(StoreError::from))?;
        work(&ReadTx { transaction })
    }

    /// Runs `work` in one write transaction; commits only when it returns `Ok`, and returns
    /// only once the commit is durable (a crash after `write` returns keeps it).
    ///
    /// A write waits for the write lock and for an fsync: on a tokio worker thread it first
    /// hands the worker's other tasks to another thread (`block_in_place`), so API requests
    /// and agent links keep running, and many writers can wait for one shared sync.
    pub fn write<T, E>(&self, work: impl FnOnce(&WriteTx<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        off_worker(|| self.write_now(work))
    }

    fn write_now<T, E>(&self, work: impl FnOnce(&WriteTx<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let open = self.database()?;
        let mut transaction =
            self.checked(&open, open.database.begin_write().map_err(StoreError::from))?;
        transaction
            .set_durability(Durability::None)
            .map_err(|error| StoreError::Database(error.into()))?;
        let output = {
            let tx = WriteTx {
                transaction: &transaction,
            };
            work(&tx)?
        };
        self.checked(&open, transaction.commit().map_err(StoreError::from))?;
        self.checked(&open, open.group.make_durable(&open.database))?;
        *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = None;
        Ok(output)
    }

    /// Durable commits run by the current opening (group commit tests).
    #[cfg(test)]
    fn syncs(&self) -> u64 {
        self.database().map(|open| open.group.syncs()).unwrap_or(0)
    }

    /// Seals a secret for the row named by `location`.
    pub fn seal(&self, location: &str, plaintext: &[u8]) -> StoreResult<Vec<u8>> {
        Ok(self.sealer.seal(location, plaintext)?)
    }

    /// Opens a secret sealed for `location`.
    pub fn unseal(&self, location: &str, sealed: &[u8]) -> StoreResult<Zeroizing<Vec<u8>>> {
        Ok(self.sealer.open(location, sealed)?)
    }

    /// Convenience: one record.
    pub fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> StoreResult<Option<T>> {
        self.read(|tx| tx.get(table, key))
    }

    /// Convenience: every record whose key starts with `prefix`, in key order.
    pub fn scan<T: DeserializeOwned>(
        &self,
        table: Table,
        prefix: &str,
    ) -> StoreResult<Vec<(String, T)>> {
        self.read(|tx| tx.scan(table, prefix))
    }
}

/// A read transaction handed to [`Store::read`] closures.
pub struct ReadTx {
    transaction: redb::ReadTransaction,
}

/// A write transaction handed to [`Store::write`] closures.
pub struct WriteTx<'a> {
    transaction: &'a redb::WriteTransaction,
}

impl ReadTx {
    /// The table, or `None` when it was never created (reads of it find nothing).
    fn opened(
        &self,
        table: Table,
    ) -> StoreResult<Option<redb::ReadOnlyTable<&'static str, &'static [u8]>>> {
        match self.transaction.open_table(definition(table)) {
            Ok(opened) => Ok(Some(opened)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    pub fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> StoreResult<Option<T>> {
        let Some(opened) = self.opened(table)? else {
            return Ok(None);
        };
        match opened.get(key)? {
            Some(value) => decode(table, key, value.value()).map(Some),
            None => Ok(None),
        }
    }

    pub fn scan<T: DeserializeOwned>(
        &self,
        table: Table,
        prefix: &str,
    ) -> StoreResult<Vec<(String, T)>> {
        let mut records = Vec::new();
        self.for_each(table, prefix, |key, record| {
            records.push((key.to_string(), record));
            Ok(())
        })?;
        Ok(records)
    }

    /// Calls `visit` on every record whose key starts with `prefix`, in key order, decoding
    /// one at a time: a scan of a million accounts holds one record, not a million.
    pub fn for_each<T: DeserializeOwned>(
        &self,
        table: Table,
        prefix: &str,
        mut visit: impl FnMut(&str, T) -> StoreResult<()>,
    ) -> StoreResult<()> {
        let Some(opened) = self.opened(table)? else {
            return Ok(());
        };
        for entry in opened.range(prefix..)? {
            let (key, value) = entry?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            visit(key, decode(table, key, value.value())?)?;
        }
        Ok(())
    }

    /// Calls `visit` on every record whose key sorts before `upper`, in key order, one at a
    /// time (an index read up to a bound: the scheduler's "due by now").
    pub fn for_each_below<T: DeserializeOwned>(
        &self,
        table: Table,
        upper: &str,
        mut visit: impl FnMut(&str, T) -> StoreResult<()>,
    ) -> StoreResult<()> {
        let Some(opened) = self.opened(table)? else {
            return Ok(());
        };
        for entry in opened.range(..upper)? {
            let (key, value) = entry?;
            let key = key.value();
            visit(key, decode(table, key, value.value())?)?;
        }
        Ok(())
    }

    pub fn count(&self, table: Table) -> StoreResult<u64> {
        use redb::ReadableTableMetadata;
        match self.opened(table)? {
            Some(opened) => Ok(opened.len()?),
            None => Ok(0),
        }
    }
}

impl WriteTx<'_> {
    pub fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> StoreResult<Option<T>> {
        let opened = self.transaction.open_table(definition(table))?;
        let value = opened.get(key)?;
        match value {
            Some(value) => decode(table, key, value.value()).map(Some),
            None => Ok(None),
        }
    }

    pub fn put<T: Serialize>(&self, table: Table, key: &str, record: &T) -> StoreResult<()> {
        let bytes = encode(table, key, record)?;
        let mut opened = self.transaction.open_table(definition(table))?;
        opened.insert(key, bytes.as_slice())?;
        Ok(())
    }

    /// Removes a record; answers whether it existed.
    pub fn delete(&self, table: Table, key: &str) -> StoreResult<bool> {
        let mut opened = self.transaction.open_table(definition(table))?;
        let existed = opened.remove(key)?.is_some();
        Ok(existed)
    }

    pub fn scan<T: DeserializeOwned>(
        &self,
        table: Table,
        prefix: &str,
    ) -> StoreResult<Vec<(String, T)>> {
        let opened = self.transaction.open_table(definition(table))?;
        let mut records = Vec::new();
        for entry in opened.range(prefix..)? {
            let (key, value) = entry?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            records.push((key.to_string(), decode(table, key, value.value())?));
        }
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Sample {
        name: String,
    }

    /// Issue 15: `operator init` made `rotor.redb` 0644 while the seal key was 0600.
    #[test]
    fn the_store_file_is_created_owner_only_and_refused_when_others_can_read_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("rotor.redb");
        drop(Store::open(&path, Sealer::ephemeral()).expect("a new store opens"));
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "a new store file is {mode:o}");
        drop(Store::open(&path, Sealer::ephemeral()).expect("an owner-only store reopens"));
        for loose in [0o644, 0o640, 0o604] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(loose)).expect("chmod");
            let error = match Store::open(&path, Sealer::ephemeral()) {
                Ok(_) => panic!("a store file with mode {loose:o} was opened"),
                Err(error) => error.to_string(),
            };
            assert!(
                error.contains(&format!("chmod 600 {}", path.display())),
                "the refusal names the fix: {error}"
            );
        }
    }

    #[test]
    fn write_is_atomic_and_scan_is_prefix_bounded() {
        let store = Store::in_memory(Sealer::ephemeral()).expect("store");
        let failed: Result<(), StoreError> = store.write(|tx| {
            tx.put(Table::Mounts, "a/", &Sample { name: "a".into() })?;
            Err(StoreError::Corrupt {
                table: "mounts",
                key: "x".into(),
                detail: "forced".into(),
            })
        });
        assert!(failed.is_err());
        assert_eq!(store.get::<Sample>(Table::Mounts, "a/").expect("get"), None);
        store
            .write(|tx| {
                tx.put(Table::Mounts, "a/", &Sample { name: "a".into() })?;
                tx.put(Table::Mounts, "ab/", &Sample { name: "ab".into() })?;
                tx.put(Table::Mounts, "b/", &Sample { name: "b".into() })?;
                Ok::<_, StoreError>(())
            })
            .expect("write");
        let scanned: Vec<(String, Sample)> = store.scan(Table::Mounts, "a").expect("scan");
        assert_eq!(scanned.len(), 2);
        assert_eq!(scanned[1].1.name, "ab");
    }

    #[test]
    fn file_store_keeps_records_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rotor.redb");
        let key_path = dir.path().join("seal.key");
        let sealer = Sealer::create_key_file(&key_path).expect("key");
        let store = Store::open(&path, sealer).expect("open");
        let sealed = store.seal("t/k", b"secret").expect("seal");
        store
            .write(|tx| tx.put(Table::Meta, "probe", &sealed))
            .expect("write");
        drop(store);
        let store = Store::open(&path, Sealer::load(&key_path).expect("load")).expect("reopen");
        let sealed: Vec<u8> = store
            .get(Table::Meta, "probe")
            .expect("get")
            .expect("present");
        assert_eq!(
            &store.unseal("t/k", &sealed).expect("unseal")[..],
            b"secret"
        );
    }
}
