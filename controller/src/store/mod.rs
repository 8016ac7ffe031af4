//! The store: the one owner of the redb file.
//!
//! Every table maps a string key to a JSON-encoded record; secret fields inside records are
//! sealed by [`seal::Sealer`] before they reach a table, so the file never holds a secret in
//! clear. Reads and writes go through [`Store::read`] and [`Store::write`], which run a closure
//! in one redb transaction: a multi-row change is atomic or absent, and durable before
//! `write` returns (concurrent writers share one fsync: [`group_commit`]).
//! Must not hold policy: what a record means belongs to the module that owns the record type.

pub mod group_commit;
pub mod schema;
pub mod seal;

use std::path::Path;

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
    database: Database,
    sealer: Sealer,
    group: group_commit::GroupCommit,
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
        let database = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|source| StoreError::Open {
                path: path.display().to_string(),
                source,
            })?;
        Self::with_database(database, sealer)
    }

    /// A store that lives only in memory (dev mode and tests).
    pub fn in_memory(sealer: Sealer) -> StoreResult<Self> {
        let database = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|source| StoreError::Open {
                path: "<memory>".into(),
                source,
            })?;
        Self::with_database(database, sealer)
    }

    fn with_database(database: Database, sealer: Sealer) -> StoreResult<Self> {
        let store = Self {
            database,
            sealer,
            group: group_commit::GroupCommit::default(),
        };
        schema::migrate(&store)?;
        Ok(store)
    }

    /// Runs `work` in one read transaction.
    pub fn read<T>(&self, work: impl FnOnce(&ReadTx) -> StoreResult<T>) -> StoreResult<T> {
        let transaction = self.database.begin_read()?;
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
        let mut transaction = self.database.begin_write().map_err(StoreError::from)?;
        transaction
            .set_durability(Durability::None)
            .map_err(|error| StoreError::Database(error.into()))?;
        let output = {
            let tx = WriteTx {
                transaction: &transaction,
            };
            work(&tx)?
        };
        transaction.commit().map_err(StoreError::from)?;
        self.group.make_durable(&self.database)?;
        Ok(output)
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
    pub fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> StoreResult<Option<T>> {
        let opened = match self.transaction.open_table(definition(table)) {
            Ok(opened) => opened,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(error) => return Err(error.into()),
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
        let opened = match self.transaction.open_table(definition(table)) {
            Ok(opened) => opened,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(error) => return Err(error.into()),
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

    pub fn count(&self, table: Table) -> StoreResult<u64> {
        use redb::ReadableTableMetadata;
        match self.transaction.open_table(definition(table)) {
            Ok(opened) => Ok(opened.len()?),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(error) => Err(error.into()),
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
