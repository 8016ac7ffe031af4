//! The agent's identity on disk: its private key (0600), its certificate, the controller's CA
//! and a small state file naming the agent, its site and its controller(s).
//!
//! Owns the layout of the agent directory and writing it safely (temp file, fsync, rename).
//! Must not talk to the network.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rotor_common::secret::PrivateKeyPem;
use serde::{Deserialize, Serialize};

pub const KEY_FILE: &str = "agent.key";
pub const CERT_FILE: &str = "agent.pem";
pub const CA_FILE: &str = "ca.pem";
pub const STATE_FILE: &str = "agent.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentState {
    pub agent_id: String,
    pub site: String,
    /// Controller addresses (`host:port`), tried in turn.
    pub controllers: Vec<String>,
}

/// Everything `rotor-agent run` needs to connect.
pub struct Identity {
    pub state: AgentState,
    pub key: PrivateKeyPem,
    pub cert_pem: String,
    pub ca_pem: String,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "agent directory {dir}: {file} is missing; enroll this agent first (rotor-agent enroll --dir {dir} ...)"
    )]
    Missing { dir: String, file: &'static str },
    #[error("agent directory {dir}: {file}: {detail}")]
    Unreadable {
        dir: String,
        file: &'static str,
        detail: String,
    },
    #[error("agent directory {dir}: cannot write {file}: {detail}")]
    Write {
        dir: String,
        file: &'static str,
        detail: String,
    },
}

fn read(dir: &Path, file: &'static str) -> Result<String, IdentityError> {
    let path = dir.join(file);
    fs::read_to_string(&path).map_err(|error| {
        if error.kind() == std::io::ErrorKind::NotFound {
            IdentityError::Missing {
                dir: dir.display().to_string(),
                file,
            }
        } else {
            IdentityError::Unreadable {
                dir: dir.display().to_string(),
                file,
                detail: error.to_string(),
            }
        }
    })
}

impl Identity {
    pub fn load(dir: &Path) -> Result<Self, IdentityError> {
        let key_path = dir.join(KEY_FILE);
        if let Ok(metadata) = fs::metadata(&key_path)
            && metadata.permissions().mode() & 0o077 != 0
        {
            return Err(IdentityError::Unreadable {
                dir: dir.display().to_string(),
                file: KEY_FILE,
                detail: format!("readable by others; run chmod 600 {}", key_path.display()),
            });
        }
        let state_text = read(dir, STATE_FILE)?;
        let state: AgentState =
            serde_json::from_str(&state_text).map_err(|error| IdentityError::Unreadable {
                dir: dir.display().to_string(),
                file: STATE_FILE,
                detail: error.to_string(),
            })?;
        Ok(Self {
            state,
            key: PrivateKeyPem::new(read(dir, KEY_FILE)?),
            cert_pem: read(dir, CERT_FILE)?,
            ca_pem: read(dir, CA_FILE)?,
        })
    }

    /// Writes the identity; the key file is created 0600 before any byte is written.
    pub fn save(&self, dir: &Path) -> Result<(), IdentityError> {
        fs::create_dir_all(dir).map_err(|error| IdentityError::Write {
            dir: dir.display().to_string(),
            file: "(directory)",
            detail: error.to_string(),
        })?;
        let state = serde_json::to_string_pretty(&self.state).unwrap_or_default();
        write_atomic(dir, KEY_FILE, self.key.expose().as_bytes(), 0o600)?;
        write_atomic(dir, CERT_FILE, self.cert_pem.as_bytes(), 0o644)?;
        write_atomic(dir, CA_FILE, self.ca_pem.as_bytes(), 0o644)?;
        write_atomic(dir, STATE_FILE, state.as_bytes(), 0o644)?;
        Ok(())
    }
}

/// Writes `file` in `dir` through a temporary file, fsync and rename, so a crash leaves
/// either the old or the new content.
pub fn write_atomic(
    dir: &Path,
    file: &'static str,
    bytes: &[u8],
    mode: u32,
) -> Result<(), IdentityError> {
    let write_error = |detail: String| IdentityError::Write {
        dir: dir.display().to_string(),
        file,
        detail,
    };
    let temporary: PathBuf = dir.join(format!(".{file}.tmp"));
    let _ = fs::remove_file(&temporary);
    let mut handle = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temporary)
        .map_err(|error| write_error(error.to_string()))?;
    handle
        .write_all(bytes)
        .and_then(|()| handle.sync_all())
        .map_err(|error| write_error(error.to_string()))?;
    fs::rename(&temporary, dir.join(file)).map_err(|error| write_error(error.to_string()))?;
    if let Ok(directory) = fs::File::open(dir) {
        let _ = directory.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_with_a_private_key_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let identity = Identity {
            state: AgentState {
                agent_id: "abc".into(),
                site: "a".into(),
                controllers: vec!["ctl:8201".into()],
            },
            key: PrivateKeyPem::new("KEY".to_string()),
            cert_pem: "CERT".into(),
            ca_pem: "CA".into(),
        };
        identity.save(dir.path()).expect("save");
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let loaded = Identity::load(dir.path()).expect("load");
        assert_eq!(loaded.state.agent_id, "abc");
        assert_eq!(loaded.key.expose(), "KEY");
        let empty = tempfile::tempdir().expect("tempdir");
        let error = Identity::load(empty.path()).err().expect("missing");
        assert!(
            error.to_string().contains("enroll this agent first"),
            "{error}"
        );
    }
}
