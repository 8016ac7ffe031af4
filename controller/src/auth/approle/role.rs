//! AppRole roles: `role/:name` (create, update, read, delete, list) and `role/:name/role-id`.
//!
//! Owns the role record, the role-ID index (`<mount>role_id/<role_id>` → role name, unique
//! per mount) and deleting a role with its secret IDs in one transaction. Must not issue
//! secret IDs or tokens (`secret_id.rs`, `login.rs`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use rotor_common::names::validate_object_name;

use super::{accessor_index_key, role_id_key, role_key, secret_id_prefix, store_prefix};
use crate::api::paths::{HandlerFuture, Request};
use crate::api::{ApiError, ApiResponse, AppState};
use crate::auth::cidr;
use crate::auth::login::TokenSettings;
use crate::store::{StoreError, Table, WriteTx};

/// One AppRole role.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RoleRecord {
    pub name: String,
    pub role_id: String,
    /// Whether a login must present a secret ID (Vault's default: true).
    pub bind_secret_id: bool,
    /// Client addresses that may log in with this role's secret IDs.
    #[serde(default)]
    pub secret_id_bound_cidrs: Vec<String>,
    /// Logins a new secret ID allows (0: unlimited).
    #[serde(default)]
    pub secret_id_num_uses: u64,
    /// A new secret ID's life (0: unlimited).
    #[serde(default)]
    pub secret_id_ttl_secs: u64,
    #[serde(flatten)]
    pub token: TokenSettings,
}

impl RoleRecord {
    fn render(&self) -> Map<String, Value> {
        let mut data = Map::new();
        data.insert("bind_secret_id".into(), json!(self.bind_secret_id));
        data.insert(
            "secret_id_bound_cidrs".into(),
            json!(self.secret_id_bound_cidrs),
        );
        data.insert("secret_id_num_uses".into(), json!(self.secret_id_num_uses));
        data.insert("secret_id_ttl".into(), json!(self.secret_id_ttl_secs));
        data.insert("local_secret_ids".into(), json!(false));
        self.token.render_into(&mut data);
        data
    }
}

/// Role names are path segments and case-insensitive, as in Vault (stored lower-case).
pub fn role_name(request: &Request) -> Result<String, ApiError> {
    let name = request.param("name").to_ascii_lowercase();
    validate_object_name("role", &name)
        .map_err(|invalid| ApiError::bad_request(invalid.to_string()))?;
    Ok(name)
}

/// The role called `name` at the request's mount.
pub fn read_role(
    state: &AppState,
    prefix: &str,
    name: &str,
) -> Result<Option<RoleRecord>, ApiError> {
    Ok(state
        .store
        .get(Table::AuthRecords, &role_key(prefix, name))?)
}

/// The role `role/:name` names, or Vault's 400 for a missing one.
pub fn existing_role(state: &AppState, request: &Request) -> Result<RoleRecord, ApiError> {
    let name = role_name(request)?;
    read_role(state, &store_prefix(request), &name)?
        .ok_or_else(|| ApiError::bad_request(format!("role \"{name}\" does not exist")))
}

pub fn role_exists(state: &AppState, request: &Request) -> Result<bool, ApiError> {
    let name = role_name(request)?;
    Ok(read_role(state, &store_prefix(request), &name)?.is_some())
}

fn non_negative(request: &Request, field: &str) -> Result<Option<u64>, ApiError> {
    request
        .int(field)?
        .map(|value| {
            u64::try_from(value).map_err(|_| {
                ApiError::bad_request(format!("field '{field}': must be zero (unlimited) or more"))
            })
        })
        .transpose()
}

/// Puts `role_id` in the index for `name`, refusing one another role of the mount holds.
fn claim_role_id(
    tx: &WriteTx<'_>,
    prefix: &str,
    role_id: &str,
    name: &str,
) -> Result<(), ApiError> {
    if role_id.trim().is_empty() {
        return Err(ApiError::bad_request("field 'role_id': must not be empty"));
    }
    match tx.get::<String>(Table::AuthRecords, &role_id_key(prefix, role_id))? {
        Some(owner) if owner != name => Err(ApiError::bad_request(
            "role_id already in use: choose another (role IDs are unique per mount)",
        )),
        _ => {
            tx.put(
                Table::AuthRecords,
                &role_id_key(prefix, role_id),
                &name.to_string(),
            )?;
            Ok(())
        }
    }
}

pub fn write_role(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let name = role_name(&request)?;
        let prefix = store_prefix(&request);
        let existing = read_role(&state, &prefix, &name)?;
        let mut role = existing.clone().unwrap_or_else(|| RoleRecord {
            name: name.clone(),
            role_id: crate::tokens::random_uuid(),
            bind_secret_id: true,
            secret_id_bound_cidrs: Vec::new(),
            secret_id_num_uses: 0,
            secret_id_ttl_secs: 0,
            token: TokenSettings::default(),
        });
        if let Some(flag) = request.bool("bind_secret_id")? {
            role.bind_secret_id = flag;
        }
        if let Some(blocks) = request.string_list("secret_id_bound_cidrs")? {
            cidr::validate(&blocks).map_err(|error| {
                ApiError::bad_request(format!("field 'secret_id_bound_cidrs': {error}"))
            })?;
            role.secret_id_bound_cidrs = blocks;
        }
        if let Some(uses) = non_negative(&request, "secret_id_num_uses")? {
            role.secret_id_num_uses = uses;
        }
        if let Some(ttl) = request.duration("secret_id_ttl")? {
            role.secret_id_ttl_secs = ttl.as_secs();
        }
        role.token.update_from(&request)?;
        if let Some(role_id) = request.string("role_id")? {
            role.role_id = role_id;
        }
        if !role.bind_secret_id
            && role.secret_id_bound_cidrs.is_empty()
            && role.token.token_bound_cidrs.is_empty()
        {
            return Err(ApiError::bad_request(
                "at least one constraint should be enabled on the role: bind_secret_id, secret_id_bound_cidrs or token_bound_cidrs",
            ));
        }
        state.store.write(|tx| {
            if let Some(old) = &existing
                && old.role_id != role.role_id
            {
                tx.delete(Table::AuthRecords, &role_id_key(&prefix, &old.role_id))?;
            }
            claim_role_id(tx, &prefix, &role.role_id, &name)?;
            tx.put(Table::AuthRecords, &role_key(&prefix, &name), &role)?;
            Ok::<_, ApiError>(())
        })?;
        tracing::info!(mount = %request.mount, role = %name, created = existing.is_none(), "approle role written");
        Ok(ApiResponse::empty())
    })
}

pub fn read(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let name = role_name(&request)?;
        match read_role(&state, &store_prefix(&request), &name)? {
            Some(role) => Ok(ApiResponse::data(role.render())),
            None => Err(ApiError::not_found(format!(
                "role \"{name}\" does not exist"
            ))),
        }
    })
}

pub fn list(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let prefix = format!("{}role/", store_prefix(&request));
        let keys: Vec<String> = state
            .store
            .scan::<Value>(Table::AuthRecords, &prefix)?
            .into_iter()
            .filter_map(|(key, _)| key.strip_prefix(&prefix).map(String::from))
            .collect();
        Ok(ApiResponse::keys(keys))
    })
}

pub fn delete(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let name = role_name(&request)?;
        let prefix = store_prefix(&request);
        state.store.write(|tx| {
            let Some(role) = tx.get::<RoleRecord>(Table::AuthRecords, &role_key(&prefix, &name))?
            else {
                return Ok::<_, StoreError>(());
            };
            tx.delete(Table::AuthRecords, &role_id_key(&prefix, &role.role_id))?;
            for under in [
                secret_id_prefix(&prefix, &name),
                accessor_index_key(&prefix, &name, ""),
            ] {
                for (key, _) in tx.scan::<Value>(Table::AuthRecords, &under)? {
                    tx.delete(Table::AuthRecords, &key)?;
                }
            }
            tx.delete(Table::AuthRecords, &role_key(&prefix, &name))?;
            Ok(())
        })?;
        Ok(ApiResponse::empty())
    })
}

pub fn read_role_id(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let role = existing_role(&state, &request)?;
        Ok(ApiResponse::data(
            crate::data_map! { "role_id" => role.role_id },
        ))
    })
}

pub fn write_role_id(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let mut role = existing_role(&state, &request)?;
        let role_id = request.required_string("role_id")?;
        let prefix = store_prefix(&request);
        let old = std::mem::replace(&mut role.role_id, role_id);
        state.store.write(|tx| {
            if old != role.role_id {
                tx.delete(Table::AuthRecords, &role_id_key(&prefix, &old))?;
            }
            claim_role_id(tx, &prefix, &role.role_id, &role.name)?;
            tx.put(Table::AuthRecords, &role_key(&prefix, &role.name), &role)?;
            Ok::<_, ApiError>(())
        })?;
        Ok(ApiResponse::empty())
    })
}
