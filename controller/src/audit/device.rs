//! One audit device: where its lines go (a file, stdout, or nowhere) and its HMAC key.
//!
//! Owns writing one line and hashing one value. A file stays open (append, 0600). Before
//! every line the open file is checked for having been deleted (its link count, an `fstat`:
//! cheap), and reopened if so, so no line goes into a ghost inode; at most every 100 ms the
//! path is also checked to still name the open inode, so a file moved or replaced by log
//! rotation is followed by the new file at the path within 100 ms (lines of those 100 ms
//! land in the moved file, which is kept). Checking the path before every line cost a third
//! of the audited read rate. Must not decide what happens when a write fails: the broker
//! does (fail closed).

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;

/// Where a device writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    File(PathBuf),
    Stdout,
    /// Vault's `discard`: written nowhere (for testing the pipeline).
    Discard,
}

impl Sink {
    pub fn from_file_path(file_path: &str) -> Self {
        match file_path {
            "stdout" => Sink::Stdout,
            "discard" => Sink::Discard,
            path => Sink::File(PathBuf::from(path)),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Sink::File(path) => path.display().to_string(),
            Sink::Stdout => "stdout".into(),
            Sink::Discard => "discard".into(),
        }
    }
}

/// An enabled device.
pub struct Device {
    /// With its trailing slash: `file/`.
    pub path: String,
    pub sink: Sink,
    pub mode: u32,
    key: hmac::Key,
    /// The open file (for a file sink) and the inode it is; also serialises lines so two
    /// requests never interleave within one.
    open_file: Mutex<Option<OpenFile>>,
}

/// A file sink's open handle and the (device, inode) it was opened as.
struct OpenFile {
    file: std::fs::File,
    identity: (u64, u64),
    /// When the path was last found to name this inode.
    path_checked: Instant,
}

impl OpenFile {
    /// Whether this file may take the next line for `path`: not deleted (checked every
    /// time), and named by `path` (checked every [`PATH_CHECK_EVERY`]).
    fn still_at(&mut self, path: &Path, now: Instant) -> bool {
        let deleted = self
            .file
            .metadata()
            .is_ok_and(|metadata| metadata.nlink() == 0);
        if !deleted && now.duration_since(self.path_checked) < PATH_CHECK_EVERY {
            return true;
        }
        let named = std::fs::metadata(path)
            .is_ok_and(|metadata| (metadata.dev(), metadata.ino()) == self.identity);
        if named {
            self.path_checked = now;
        }
        named
    }
}

impl std::fmt::Debug for Device {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Device")
            .field("path", &self.path)
            .field("sink", &self.sink)
            .finish_non_exhaustive()
    }
}

/// How often a file sink checks that its path still names the open inode.
const PATH_CHECK_EVERY: Duration = Duration::from_millis(100);

/// The prefix of every hashed value, as Vault writes it.
pub const HMAC_PREFIX: &str = "hmac-sha256:";

impl Device {
    pub fn new(path: String, sink: Sink, mode: u32, key_bytes: &[u8]) -> Self {
        Self {
            path,
            sink,
            mode,
            key: hmac::Key::new(hmac::HMAC_SHA256, key_bytes),
            open_file: Mutex::new(None),
        }
    }

    /// `hmac-sha256:<hex>` of `value` under this device's key.
    pub fn hash(&self, value: &str) -> String {
        let tag = hmac::sign(&self.key, value.as_bytes());
        let mut digits = [0u8; 64];
        let mut hashed = String::with_capacity(HMAC_PREFIX.len() + digits.len());
        hashed.push_str(HMAC_PREFIX);
        // A SHA-256 tag is 32 bytes: 64 hex digits always fit, and hex digits are ASCII.
        if hex::encode_to_slice(tag.as_ref(), &mut digits).is_ok()
            && let Ok(text) = std::str::from_utf8(&digits)
        {
            hashed.push_str(text);
        }
        hashed
    }

    /// Checks the sink can be opened (enabling a device that cannot write is refused).
    pub fn probe(&self) -> std::io::Result<()> {
        match &self.sink {
            Sink::File(path) => self.open(path).map(drop),
            Sink::Stdout | Sink::Discard => Ok(()),
        }
    }

    fn open(&self, path: &PathBuf) -> std::io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(self.mode)
            .open(path)
    }

    /// Appends `line` and a newline.
    pub fn write_line(&self, line: &str) -> std::io::Result<()> {
        let mut open_file = self
            .open_file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        match &self.sink {
            Sink::File(path) => {
                // The file we hold must not be deleted, and (checked every PATH_CHECK_EVERY)
                // the path must still name it; otherwise (deleted, moved, replaced) open the
                // path anew, which also surfaces a path that became unwritable.
                let now = Instant::now();
                let still_ours = open_file
                    .as_mut()
                    .is_some_and(|open| open.still_at(path, now));
                if !still_ours {
                    *open_file = None;
                    let file = self.open(path)?;
                    let metadata = file.metadata()?;
                    *open_file = Some(OpenFile {
                        file,
                        identity: (metadata.dev(), metadata.ino()),
                        path_checked: now,
                    });
                }
                let Some(open) = open_file.as_mut() else {
                    return Err(std::io::Error::other("audit file not open"));
                };
                open.file.write_all(&bytes)
            }
            Sink::Stdout => {
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(&bytes)?;
                stdout.flush()
            }
            Sink::Discard => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_keyed_and_stable() {
        let one = Device::new("a/".into(), Sink::Discard, 0o600, &[1u8; 32]);
        let two = Device::new("b/".into(), Sink::Discard, 0o600, &[2u8; 32]);
        assert_eq!(one.hash("secret"), one.hash("secret"));
        assert_ne!(one.hash("secret"), two.hash("secret"));
        assert!(one.hash("secret").starts_with("hmac-sha256:"));
        assert_eq!(one.hash("secret").len(), HMAC_PREFIX.len() + 64);
    }

    #[test]
    fn a_moved_file_is_followed_by_a_new_one_at_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        let moved = dir.path().join("audit.log.1");
        let device = Device::new("file/".into(), Sink::File(path.clone()), 0o600, &[0u8; 32]);
        device.write_line("one").expect("written");
        std::fs::rename(&path, &moved).expect("rotated away");
        std::thread::sleep(PATH_CHECK_EVERY + Duration::from_millis(50));
        device.write_line("two").expect("written");
        device.write_line("three").expect("written");
        assert_eq!(std::fs::read_to_string(&moved).expect("old"), "one\n");
        assert_eq!(std::fs::read_to_string(&path).expect("new"), "two\nthree\n");
        let mode = std::fs::metadata(&path).expect("meta").mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_deleted_file_is_noticed_at_the_next_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        let device = Device::new("file/".into(), Sink::File(path.clone()), 0o600, &[0u8; 32]);
        device.write_line("one").expect("written");
        std::fs::remove_file(&path).expect("deleted");
        device.write_line("two").expect("written");
        assert_eq!(std::fs::read_to_string(&path).expect("new"), "two\n");
    }

    #[test]
    fn a_file_replaced_by_a_directory_stops_the_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        let device = Device::new("file/".into(), Sink::File(path.clone()), 0o600, &[0u8; 32]);
        device.probe().expect("writable");
        device.write_line("{\"a\":1}").expect("written");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{\"a\":1}\n");
        std::fs::remove_file(&path).expect("remove");
        std::fs::create_dir(&path).expect("directory in its place");
        assert!(device.write_line("{\"a\":2}").is_err());
    }
}
