//! Audit devices: every API request and response, one JSON line each, with secrets replaced
//! by per-device HMACs; and the fail-closed rule.
//!
//! Owns the `audit_devices` table (HMAC keys sealed), the live device list, and logging:
//! [`AuditBroker::log_request`] must succeed on at least one device before a request runs
//! (otherwise the caller answers 500 and performs nothing); the response goes to the devices
//! that took the request, so every request line has its response line. Device types: `file`
//! (a path, `stdout` or `discard`); socket and syslog are not offered. Must not decide who
//! may enable a device (the ACL's job) nor build API responses.

pub mod device;
pub mod entry;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

pub use device::{Device, Sink};
pub use entry::{AuditAuth, AuditRequest, AuditResponse};

use crate::api::ApiError;
use crate::store::{Store, StoreError, Table};

/// Device types Rotor offers, for error messages.
pub const KNOWN_TYPES: &[&str] = &["file"];

/// Options a `file` device takes.
const FILE_OPTIONS: &[&str] = &["file_path", "path", "mode", "hmac_accessor", "format"];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditDeviceRecord {
    /// With its trailing slash: `file/`.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
    pub options: BTreeMap<String, String>,
    /// The device's HMAC key, sealed with the store's seal key.
    pub sealed_hmac_key: Vec<u8>,
    pub created_unix: u64,
}

/// Why a device could not be enabled, disabled or used.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Proof that a request was recorded: the devices that took it, which also get its response.
#[derive(Debug, Default)]
pub struct Receipt {
    devices: Vec<(Arc<Device>, entry::Fragments)>,
}

/// An enabled device with the record it was built from.
type Enabled = (AuditDeviceRecord, Arc<Device>);

/// Owns the enabled devices. Cheap to clone.
#[derive(Clone)]
pub struct AuditBroker {
    store: Arc<Store>,
    /// A std lock: never held across an await (writes are synchronous). The list is
    /// replaced whole on enable/disable, so a request takes it with one reference count.
    devices: Arc<RwLock<Arc<Vec<Enabled>>>>,
}

fn seal_location(path: &str) -> String {
    format!("audit_devices/{path}")
}

fn normalize_path(path: &str) -> Result<String, AuditError> {
    let trimmed = path.trim_matches('/');
    let valid = !trimmed.is_empty()
        && trimmed.split('/').all(|segment| {
            // `.` and `..` are path steps to every HTTP client: a device there is unreachable.
            !matches!(segment, "" | "." | "..")
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        });
    if valid {
        Ok(format!("{trimmed}/"))
    } else {
        Err(AuditError::Invalid(format!(
            "audit device path '{path}' is invalid: use letters, digits, '-', '_' and '.', and no segment '.' or '..'"
        )))
    }
}

fn file_mode(options: &BTreeMap<String, String>) -> Result<u32, AuditError> {
    match options.get("mode") {
        None => Ok(0o600),
        Some(text) => u32::from_str_radix(text.trim_start_matches("0o"), 8)
            .ok()
            .filter(|mode| *mode <= 0o777)
            .ok_or_else(|| {
                AuditError::Invalid(format!(
                    "option 'mode': '{text}' is not an octal file mode such as 0600"
                ))
            }),
    }
}

impl AuditBroker {
    /// Loads the enabled devices (unsealing their keys).
    pub fn load(store: Arc<Store>) -> Result<Self, AuditError> {
        let mut devices = Vec::new();
        for (path, record) in store.scan::<AuditDeviceRecord>(Table::AuditDevices, "")? {
            let key = store.unseal(&seal_location(&path), &record.sealed_hmac_key)?;
            let device = Self::device(&record, &key)?;
            devices.push((record, Arc::new(device)));
        }
        Ok(Self {
            store,
            devices: Arc::new(RwLock::new(Arc::new(devices))),
        })
    }

    fn device(record: &AuditDeviceRecord, key: &[u8]) -> Result<Device, AuditError> {
        let file_path = record
            .options
            .get("file_path")
            .or_else(|| record.options.get("path"))
            .ok_or_else(|| {
                AuditError::Invalid(
                    "option 'file_path' is required: a file path, stdout or discard".into(),
                )
            })?;
        Ok(Device::new(
            record.path.clone(),
            Sink::from_file_path(file_path),
            file_mode(&record.options)?,
            key,
        ))
    }

    fn snapshot(&self) -> Arc<Vec<Enabled>> {
        self.devices
            .read()
            .map(|devices| Arc::clone(&devices))
            .unwrap_or_default()
    }

    /// Replaces the device list with `change` applied to a copy of it.
    fn update(&self, change: impl FnOnce(&mut Vec<Enabled>)) {
        if let Ok(mut devices) = self.devices.write() {
            let mut next = Vec::clone(&devices);
            change(&mut next);
            *devices = Arc::new(next);
        }
    }

    pub fn list(&self) -> Vec<AuditDeviceRecord> {
        self.snapshot()
            .iter()
            .map(|(record, _)| record.clone())
            .collect()
    }

    pub fn is_enabled(&self) -> bool {
        !self.snapshot().is_empty()
    }

    /// Enables a device at `path`; refuses one that cannot write now.
    pub fn enable(
        &self,
        path: &str,
        kind: &str,
        description: &str,
        options: BTreeMap<String, String>,
    ) -> Result<AuditDeviceRecord, AuditError> {
        let path = normalize_path(path)?;
        if kind != "file" {
            return Err(AuditError::Invalid(format!(
                "audit device type '{kind}' is not available; Rotor offers: {}",
                KNOWN_TYPES.join(", ")
            )));
        }
        for key in options.keys() {
            if !FILE_OPTIONS.contains(&key.as_str()) {
                return Err(AuditError::Invalid(format!(
                    "option '{key}' is not supported by the file device (it takes: {})",
                    FILE_OPTIONS.join(", ")
                )));
            }
        }
        if options.get("format").is_some_and(|format| format != "json") {
            return Err(AuditError::Invalid(
                "option 'format': only json is supported".into(),
            ));
        }
        if self
            .snapshot()
            .iter()
            .any(|(record, _)| record.path == path)
        {
            return Err(AuditError::Invalid(format!(
                "path already in use: an audit device is enabled at {path}"
            )));
        }
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        rand::fill(&mut key[..]);
        let record = AuditDeviceRecord {
            path: path.clone(),
            kind: kind.to_string(),
            description: description.to_string(),
            options,
            sealed_hmac_key: self.store.seal(&seal_location(&path), &key[..])?,
            created_unix: crate::tokens::now_unix(),
        };
        let device = Self::device(&record, &key[..])?;
        device.probe().map_err(|error| {
            AuditError::Invalid(format!(
                "cannot write the audit file {}: {error}; fix the path or its permissions",
                device.sink.describe()
            ))
        })?;
        self.store.write(|tx| {
            if tx
                .get::<AuditDeviceRecord>(Table::AuditDevices, &path)?
                .is_some()
            {
                return Err(AuditError::Invalid(format!(
                    "path already in use: an audit device is enabled at {path}"
                )));
            }
            tx.put(Table::AuditDevices, &path, &record)
                .map_err(AuditError::from)
        })?;
        self.update(|devices| devices.push((record.clone(), Arc::new(device))));
        Ok(record)
    }

    /// Disables the device at `path`; answers whether one was there.
    pub fn disable(&self, path: &str) -> Result<bool, AuditError> {
        let path = normalize_path(path)?;
        let existed = self
            .store
            .write(|tx| tx.delete(Table::AuditDevices, &path))?;
        self.update(|devices| devices.retain(|(record, _)| record.path != path));
        Ok(existed)
    }

    /// `sys/audit-hash`: the HMAC the device at `path` writes for `input`.
    pub fn hash(&self, path: &str, input: &str) -> Result<String, AuditError> {
        let path = normalize_path(path)?;
        self.snapshot()
            .iter()
            .find(|(record, _)| record.path == path)
            .map(|(_, device)| device.hash(input))
            .ok_or_else(|| AuditError::Invalid(format!("no audit device is enabled at {path}")))
    }

    /// Writes the request line to every device. With devices enabled and none able to write,
    /// answers 500: the caller must not perform the request.
    pub fn log_request(
        &self,
        request: &AuditRequest,
        error: Option<&str>,
    ) -> Result<Receipt, ApiError> {
        let devices = self.snapshot();
        if devices.is_empty() {
            return Ok(Receipt::default());
        }
        let now = std::time::SystemTime::now();
        let mut receipt = Receipt::default();
        let mut failures = Vec::new();
        for (_, device) in devices.iter() {
            let fragments = entry::fragments(request, &|value| device.hash(value));
            let line = entry::request_line(&fragments, error, now);
            match device.write_line(&line) {
                Ok(()) => receipt.devices.push((Arc::clone(device), fragments)),
                Err(failure) => failures.push(format!("{} ({failure})", device.path)),
            }
        }
        if receipt.devices.is_empty() {
            tracing::error!(request_id = %request.id, path = %request.path, failures = %failures.join("; "), "no audit device could record a request: refusing it");
            return Err(ApiError::internal(format!(
                "audit: no enabled audit device could record this request ({}); it was not performed",
                failures.join("; ")
            )));
        }
        if !failures.is_empty() {
            tracing::warn!(request_id = %request.id, failures = %failures.join("; "), "some audit devices failed to record a request");
        }
        Ok(receipt)
    }

    /// Writes the response line to the devices that took the request. Answers 500 when none
    /// could: the request already ran, but its client must not see a success that left no
    /// trace.
    pub fn log_response(
        &self,
        receipt: &Receipt,
        request: &AuditRequest,
        response: &AuditResponse<'_>,
        error: Option<&str>,
    ) -> Result<(), ApiError> {
        if receipt.devices.is_empty() {
            return Ok(());
        }
        let now = std::time::SystemTime::now();
        let mut written = 0;
        let mut failures = Vec::new();
        for (device, fragments) in &receipt.devices {
            let line = entry::response_line(
                fragments,
                request,
                response,
                error,
                &|value| device.hash(value),
                now,
            );
            match device.write_line(&line) {
                Ok(()) => written += 1,
                Err(failure) => failures.push(format!("{} ({failure})", device.path)),
            }
        }
        if written == 0 {
            tracing::error!(request_id = %request.id, path = %request.path, failures = %failures.join("; "), "no audit device could record a response");
            return Err(ApiError::internal(format!(
                "audit: no enabled audit device could record the response ({}); the request was performed",
                failures.join("; ")
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Sealer;
    use serde_json::{Map, Value, json};

    fn broker() -> AuditBroker {
        let store = Arc::new(Store::in_memory(Sealer::ephemeral()).expect("store"));
        AuditBroker::load(store).expect("broker")
    }

    fn file_options(path: &std::path::Path) -> BTreeMap<String, String> {
        BTreeMap::from([("file_path".to_string(), path.display().to_string())])
    }

    fn request(secret: &str) -> AuditRequest {
        let mut data = Map::new();
        data.insert("password".into(), Value::String(secret.into()));
        AuditRequest {
            id: "r1".into(),
            operation: "update",
            mount_type: "os".into(),
            path: "os/x".into(),
            data,
            remote_address: None,
            auth: None,
        }
    }

    #[test]
    fn pairs_request_and_response_lines_and_hashes_like_audit_hash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("audit.log");
        let audit = broker();
        audit
            .enable("file", "file", "", file_options(&log))
            .expect("enable");
        let request = request("s3cret-value");
        let receipt = audit.log_request(&request, None).expect("request");
        let data: Map<String, Value> = Map::from_iter([("ok".to_string(), json!("s3cret-value"))]);
        let response = AuditResponse {
            data: Some(&data),
            ..AuditResponse::default()
        };
        audit
            .log_response(&receipt, &request, &response, None)
            .expect("response");
        let text = std::fs::read_to_string(&log).expect("log");
        assert!(!text.contains("s3cret-value"));
        let hash = audit.hash("file", "s3cret-value").expect("hash");
        assert_eq!(text.matches(&hash).count(), 3, "{text}");
        assert_eq!(text.lines().count(), 2);
    }

    #[test]
    fn fails_closed_when_no_device_can_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("audit.log");
        let audit = broker();
        assert!(
            audit.log_request(&request("x"), None).is_ok(),
            "no devices: no audit"
        );
        audit
            .enable("file", "file", "", file_options(&log))
            .expect("enable");
        std::fs::remove_file(&log).expect("remove");
        std::fs::create_dir(&log).expect("a directory in its place");
        let error = audit.log_request(&request("x"), None).expect_err("refused");
        assert_eq!(error.status.as_u16(), 500);
        assert!(error.message.contains("not performed"), "{error}");
        assert!(!error.message.contains("x\""), "{error}");
    }

    #[test]
    fn enabling_checks_type_options_and_writability() {
        let dir = tempfile::tempdir().expect("tempdir");
        let audit = broker();
        let error = audit
            .enable("sock", "socket", "", BTreeMap::new())
            .expect_err("type");
        assert!(error.to_string().contains("offers: file"), "{error}");
        let error = audit
            .enable("file", "file", "", BTreeMap::new())
            .expect_err("no path");
        assert!(error.to_string().contains("file_path"), "{error}");
        let blocker = dir.path().join("regular-file");
        std::fs::write(&blocker, "").expect("file");
        let error = audit
            .enable("file", "file", "", file_options(&blocker.join("audit.log")))
            .expect_err("parent is a file");
        assert!(error.to_string().contains("cannot write"), "{error}");
        let mut options = file_options(&dir.path().join("a.log"));
        options.insert("log_raw".into(), "true".into());
        assert!(audit.enable("file", "file", "", options).is_err());
        for dotted in [".", "..", "file/..", "./file"] {
            let error = audit
                .enable(dotted, "file", "", file_options(&dir.path().join("b.log")))
                .expect_err(dotted);
            assert!(error.to_string().contains("'..'"), "{dotted}: {error}");
        }
        assert!(!audit.is_enabled());
    }

    #[test]
    fn devices_and_keys_survive_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rotor.redb");
        let key = dir.path().join("seal.key");
        let before = {
            let store = Arc::new(
                Store::open(&path, Sealer::create_key_file(&key).expect("key")).expect("open"),
            );
            let audit = AuditBroker::load(store).expect("broker");
            audit
                .enable("file", "file", "", file_options(&dir.path().join("a.log")))
                .expect("enable");
            audit.hash("file", "value").expect("hash")
        };
        let store =
            Arc::new(Store::open(&path, Sealer::load(&key).expect("load")).expect("reopen"));
        let audit = AuditBroker::load(store).expect("broker");
        assert_eq!(audit.hash("file/", "value").expect("hash"), before);
        assert!(audit.disable("file").expect("disable"));
        assert!(!audit.is_enabled());
    }
}
