//! The database engine's path table, as Vault's database engine lays it out: `config/:name`
//! (and its list), `reset/:name`, `roles/:name` (and its list), `creds/:role`.
//!
//! Owns reading requests into records and rendering answers; a user mistake is a 400 naming
//! the field. A connection's password is sealed on write and never answered. Issuance and the
//! lease actions are `creds.rs`; agent jobs are `jobs.rs`.

use std::sync::LazyLock;

use rotor_common::ids::JobId;
use rotor_common::secret::Password;
use rotor_common::wire::database::{DbJob, DbOutcome, PasswordAuthentication, RoleValues};
use serde_json::Value;

use super::creds::{self, SECRET_KIND};
use super::jobs::{self, DbJobEnd};
use super::model::{self, ConnectionRecord, RoleRecord};
use super::url;
use super::username::UsernameTemplate;
use crate::api::paths::{Field, FieldKind, HandlerFuture, Operation, PathSpec, Request};
use crate::api::{ApiError, ApiResponse, AppState};
use crate::data_map;
use crate::dispatch::registry;
use crate::engines::os::site;
use crate::store::Table;

/// The plugin names this engine answers to (Vault's PostgreSQL plugin).
pub const PLUGIN_NAMES: &[&str] = &["postgresql-database-plugin"];

const CONFIG_FIELDS: &[Field] = &[
    Field::new(
        "plugin_name",
        FieldKind::String,
        "the database plugin: postgresql-database-plugin (the only one)",
    ),
    Field::new(
        "connection_url",
        FieldKind::String,
        "postgresql://{{username}}:{{password}}@HOST:PORT/DB?sslmode=disable|prefer|require|verify-full; a literal password in it is sealed and replaced by {{password}}",
    ),
    Field::new(
        "username",
        FieldKind::String,
        "the user Rotor connects as ({{username}} in the URL)",
    ),
    Field::new(
        "password",
        FieldKind::String,
        "that user's password ({{password}} in the URL); sealed, never returned",
    )
    .sensitive(),
    Field::new(
        "allowed_roles",
        FieldKind::StringList,
        "roles that may issue credentials on this connection; * for any",
    ),
    Field::new(
        "verify_connection",
        FieldKind::Bool,
        "connect through an agent of the site before saving (default true)",
    ),
    Field::new(
        "root_rotation_statements",
        FieldKind::StringList,
        "statements that change the root password (rotate-root); default ALTER ROLE ... WITH PASSWORD",
    ),
    Field::new(
        "password_policy",
        FieldKind::String,
        "the password policy (sys/policies/password) for generated passwords; default 20 letters, digits and -",
    ),
    Field::new(
        "username_template",
        FieldKind::String,
        "template of generated usernames ({{.DisplayName}}, {{.RoleName}}, {{random N}}, {{unix_time}}, | truncate N); fitted to 63 bytes by cutting the description, never the random part",
    ),
    Field::new(
        "max_open_connections",
        FieldKind::Int,
        "most connections the agent opens to this database (default 4)",
    ),
    Field::new(
        "max_idle_connections",
        FieldKind::Int,
        "most idle connections the agent keeps (default: max_open_connections)",
    ),
    Field::new(
        "max_connection_lifetime",
        FieldKind::Duration,
        "a pooled connection older than this is closed (default 0: no limit)",
    ),
    Field::new(
        "password_authentication",
        FieldKind::String,
        "password (default) or scram-sha-256: the agent sends a SCRAM verifier, never the plaintext",
    ),
    Field::new(
        "site",
        FieldKind::String,
        "the site whose agents reach this database (default as for an OS host: the only site with agents, else default)",
    ),
    Field::new(
        "tls_ca",
        FieldKind::String,
        "PEM certificates to trust for sslmode=verify-full",
    ),
];

const ROLE_FIELDS: &[Field] = &[
    Field::new(
        "db_name",
        FieldKind::String,
        "the connection (database/config/NAME) the role's credentials are made on",
    ),
    Field::new(
        "creation_statements",
        FieldKind::StringList,
        "statements that create the role, with {{name}}, {{password}} and {{expiration}}; run in one transaction",
    ),
    Field::new(
        "revocation_statements",
        FieldKind::StringList,
        "statements that drop the role ({{name}}); default: revoke grants in every schema, reassign and drop owned, DROP ROLE",
    ),
    Field::new(
        "rollback_statements",
        FieldKind::StringList,
        "kept for Vault compatibility: creation runs in one transaction, so a failed one leaves nothing to roll back",
    ),
    Field::new(
        "renew_statements",
        FieldKind::StringList,
        "statements run on renewal ({{name}}, {{expiration}}); default ALTER ROLE ... VALID UNTIL",
    ),
    Field::new(
        "default_ttl",
        FieldKind::Duration,
        "lease TTL of issued credentials (default 768h)",
    ),
    Field::new(
        "max_ttl",
        FieldKind::Duration,
        "renewals stop here, from issue time (default 768h)",
    ),
    Field::new(
        "revoke_terminates_sessions",
        FieldKind::Bool,
        "revocation terminates the role's open sessions first (default true)",
    ),
    Field::new(
        "credential_type",
        FieldKind::String,
        "password (the only type)",
    ),
];

static PATHS: LazyLock<Vec<PathSpec>> = LazyLock::new(|| {
    vec![
        PathSpec::new(
            "config",
            "Lists the database connections.",
            "The names of the connections configured at this mount.",
            &[],
            vec![(Operation::List, list_connections as fn(_, _) -> _)],
        ),
        PathSpec::new(
            "config/{name}",
            "Configures a connection to a PostgreSQL database, reached through an agent of its site.",
            "A write saves the connection (the password sealed); with verify_connection (the \
             default) an agent of the site connects first and a failure is a 400 with the \
             database's answer. The controller never connects to a database. A read answers \
             everything but the password. A connection that still has leases cannot be deleted.",
            CONFIG_FIELDS,
            vec![
                (Operation::Read, read_connection as fn(_, _) -> _),
                (Operation::Write, write_connection),
                (Operation::Delete, delete_connection),
            ],
        ),
        PathSpec::new(
            "reset/{name}",
            "Checks a connection again through an agent (Vault closes and reopens it).",
            "Runs the connection check on an agent of the connection's site and answers the \
             server's version, or the error.",
            &[],
            vec![(Operation::Write, reset_connection)],
        ),
        PathSpec::new(
            "roles",
            "Lists the roles.",
            "The names of the roles at this mount.",
            &[],
            vec![(Operation::List, list_roles as fn(_, _) -> _)],
        ),
        PathSpec::new(
            "roles/{name}",
            "Defines how dynamic credentials are made on a connection.",
            "db_name must name a connection that allows this role; creation_statements must \
             use {{name}} and {{password}}; default_ttl may not exceed max_ttl. When the \
             connection has verify_connection, an agent runs the creation statements for a \
             throwaway name in a transaction it rolls back, and a refusal is a 400 with the \
             database's error.",
            ROLE_FIELDS,
            vec![
                (Operation::Read, read_role as fn(_, _) -> _),
                (Operation::Write, write_role),
                (Operation::Delete, delete_role),
            ],
        ),
        PathSpec::new(
            "creds/{role}",
            "New credentials of a role: a PostgreSQL role under a renewable lease.",
            "The lease is stored before the agent creates the role, so a crash never leaves a \
             role without a lease; the role's VALID UNTIL is the lease's expiry. Revoking the \
             lease (or its token) terminates the role's sessions and drops it.",
            &[],
            vec![
                (Operation::Read, creds::creds as fn(_, _) -> _),
                (Operation::Write, creds::creds),
            ],
        ),
    ]
});

pub fn paths() -> &'static [PathSpec] {
    &PATHS
}

/// Statement lists: a string is one text (split at `;` by the agent, never at commas), a
/// JSON list is several.
fn statements(request: &Request, field: &str) -> Result<Option<Vec<String>>, ApiError> {
    match request.string(field) {
        Ok(Some(text)) => Ok(Some(vec![text])),
        Ok(None) => Ok(None),
        Err(_) => request.string_list(field),
    }
    .map(|list| {
        list.map(|items| {
            items
                .into_iter()
                .filter(|item| !item.trim().is_empty())
                .collect()
        })
    })
}

fn positive_u32(request: &Request, field: &str) -> Result<Option<u32>, ApiError> {
    match request.int(field)? {
        None => Ok(None),
        Some(value) => u32::try_from(value).map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "field '{field}': expected a number from 0 to 4294967295"
            ))
        }),
    }
}

fn connection_data(record: &ConnectionRecord) -> serde_json::Map<String, Value> {
    data_map! {
        "plugin_name" => record.plugin_name,
        "connection_details" => serde_json::json!({
            "connection_url": record.connection_url,
            "username": record.username,
            "max_open_connections": record.max_open_connections,
            "max_idle_connections": record.max_idle_connections,
            "max_connection_lifetime": format!("{}s", record.max_connection_lifetime_secs),
            "password_authentication": match record.password_authentication {
                PasswordAuthentication::Password => "password",
                PasswordAuthentication::ScramSha256 => "scram-sha-256",
            },
            "tls_ca": record.tls_ca,
        }),
        "allowed_roles" => record.allowed_roles,
        "root_credentials_rotate_statements" => record.root_rotation_statements,
        "password_policy" => record.password_policy.clone().unwrap_or_default(),
        "username_template" => record.username_template.clone().unwrap_or_default(),
        "verify_connection" => record.verify_connection,
        "site" => record.site,
        "plugin_version" => "",
    }
}

fn list_connections(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        Ok(ApiResponse::keys(model::list_connections(
            &state.store,
            &request.mount,
        )?))
    })
}

fn read_connection(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let name = request.param("name");
        let record =
            model::get_connection(&state.store, &request.mount, name)?.ok_or_else(|| {
                ApiError::not_found(format!(
                    "connection '{name}' does not exist at {}config/",
                    request.mount
                ))
            })?;
        Ok(ApiResponse::data(connection_data(&record)))
    })
}

fn write_connection(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let mount = request.mount.clone();
        let name = request.param("name").to_string();
        rotor_common::names::validate_object_name("connection", &name)
            .map_err(|invalid| ApiError::bad_request(invalid.to_string()))?;
        let existing = model::get_connection(&state.store, &mount, &name)?;
        let mut warnings = Vec::new();

        let plugin_name = match (request.string("plugin_name")?, &existing) {
            (Some(plugin), _) => plugin,
            (None, Some(existing)) => existing.plugin_name.clone(),
            (None, None) => {
                return Err(ApiError::bad_request(
                    "missing required field 'plugin_name': postgresql-database-plugin",
                ));
            }
        };
        if !PLUGIN_NAMES.contains(&plugin_name.as_str()) {
            return Err(ApiError::bad_request(format!(
                "field 'plugin_name': '{plugin_name}' is not supported; this engine speaks PostgreSQL: postgresql-database-plugin"
            )));
        }
        let url_text = match (request.string("connection_url")?, &existing) {
            (Some(url), _) => url,
            (None, Some(existing)) => existing.connection_url.clone(),
            (None, None) => {
                return Err(ApiError::bad_request(
                    "missing required field 'connection_url': postgresql://{{username}}:{{password}}@HOST:PORT/DB",
                ));
            }
        };
        let parsed = url::parse(&url_text).map_err(ApiError::bad_request)?;
        let username = request
            .string("username")?
            .or(parsed.literal_username.clone())
            .or(existing.as_ref().map(|record| record.username.clone()))
            .filter(|user| !user.is_empty())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "missing required field 'username': the user Rotor connects as",
                )
            })?;
        let new_password = request
            .string("password")?
            .or(parsed.literal_password.clone())
            .map(Password::new);
        let password_sealed = match &new_password {
            Some(password) => Some(model::seal_password(&state.store, &mount, &name, password)?),
            None => existing
                .as_ref()
                .and_then(|record| record.password_sealed.clone()),
        };
        let allowed_roles = match request.string_list("allowed_roles")? {
            Some(roles) => roles,
            None => existing
                .as_ref()
                .map(|record| record.allowed_roles.clone())
                .unwrap_or_default(),
        };
        let password_policy = match request.string("password_policy")? {
            Some(text) if text.is_empty() => None,
            Some(text) => Some(text),
            None => existing
                .as_ref()
                .and_then(|record| record.password_policy.clone()),
        };
        if let Some(policy) = &password_policy {
            let loaded = crate::password_policy::store::load(&state.store, policy)
                .map_err(|error| ApiError::internal(format!("loading password policy '{policy}': {error}")))?
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "field 'password_policy': policy '{policy}' does not exist; write sys/policies/password/{policy} first"
                    ))
                })?;
            if loaded
                .alphabet()
                .into_iter()
                .any(creds::unsafe_in_statements)
            {
                return Err(ApiError::bad_request(format!(
                    "field 'password_policy': policy '{policy}' can produce ' or \\, which would break the statements' quoting"
                )));
            }
        }
        let username_template = match request.string("username_template")? {
            Some(text) if text.is_empty() => None,
            Some(text) => {
                UsernameTemplate::parse(&text).map_err(ApiError::bad_request)?;
                Some(text)
            }
            None => existing
                .as_ref()
                .and_then(|record| record.username_template.clone()),
        };
        let password_authentication = match request.string("password_authentication")?.as_deref() {
            Some("password") => PasswordAuthentication::Password,
            Some("scram-sha-256") => PasswordAuthentication::ScramSha256,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "field 'password_authentication': '{other}' is neither password nor scram-sha-256"
                )));
            }
            None => existing
                .as_ref()
                .map(|record| record.password_authentication)
                .unwrap_or(PasswordAuthentication::Password),
        };
        let max_open_connections = positive_u32(&request, "max_open_connections")?
            .or(existing.as_ref().map(|record| record.max_open_connections))
            .unwrap_or(4)
            .max(1);
        let max_idle_connections = positive_u32(&request, "max_idle_connections")?
            .or(existing.as_ref().map(|record| record.max_idle_connections))
            .filter(|idle| *idle > 0)
            .unwrap_or(max_open_connections)
            .min(max_open_connections);
        let max_connection_lifetime_secs = match request.duration("max_connection_lifetime")? {
            Some(duration) => duration.as_secs(),
            None => existing
                .as_ref()
                .map(|record| record.max_connection_lifetime_secs)
                .unwrap_or(0),
        };
        let tls_ca = match request.string("tls_ca")? {
            Some(text) if text.trim().is_empty() => None,
            Some(text) => Some(text),
            None => existing.as_ref().and_then(|record| record.tls_ca.clone()),
        };
        let site = match (
            request.string("site")?.filter(|site| !site.is_empty()),
            &existing,
        ) {
            (Some(site), _) => {
                rotor_common::names::validate_object_name("site", &site)
                    .map_err(|invalid| ApiError::bad_request(format!("field 'site': {invalid}")))?;
                site
            }
            (None, Some(existing)) => existing.site.clone(),
            (None, None) => {
                let sites = registry::sites_with_agents(&state.store)?;
                let choice = site::choose_site(None, &sites);
                if let Some(warning) = choice.warning(&mount, &name) {
                    warnings.push(
                        warning.replace(&format!("host {name}"), &format!("connection {name}")),
                    );
                }
                choice.site().to_string()
            }
        };
        let verify_connection = request.bool("verify_connection")?.unwrap_or(true);
        let record = ConnectionRecord {
            name: name.clone(),
            plugin_name,
            connection_url: parsed.redacted.clone(),
            host: parsed.host.clone(),
            port: parsed.port,
            database: parsed.database.clone(),
            ssl_mode: parsed.ssl_mode,
            connect_timeout_secs: parsed.connect_timeout_secs.unwrap_or(10),
            username,
            password_sealed,
            allowed_roles,
            verify_connection,
            root_rotation_statements: statements(&request, "root_rotation_statements")?
                .or(existing
                    .as_ref()
                    .map(|record| record.root_rotation_statements.clone()))
                .unwrap_or_default(),
            password_policy,
            username_template,
            max_open_connections,
            max_idle_connections,
            max_connection_lifetime_secs,
            password_authentication,
            tls_ca,
            site,
        };
        if verify_connection {
            let server_version = verify(&state, &mount, &record).await.map_err(|message| {
                ApiError::bad_request(format!(
                    "connection {name}: {message}; the connection was not saved (fix it, or write verify_connection=false to save it unchecked)"
                ))
            })?;
            tracing::info!(%mount, connection = %name, site = %record.site, %server_version, "database connection verified");
        }
        state.store.write(|tx| {
            tx.put(
                Table::DatabaseConnections,
                &model::key(&mount, &name),
                &record,
            )
        })?;
        let mut response = ApiResponse::empty();
        for warning in warnings {
            response = response.with_warning(warning);
        }
        Ok(response)
    })
}

/// Connects through an agent of the connection's site; answers the server's version.
async fn verify(
    state: &AppState,
    mount: &str,
    record: &ConnectionRecord,
) -> Result<String, String> {
    let target = model::target(&state.store, mount, record).map_err(|error| error.to_string())?;
    match jobs::run(
        &state.dispatcher,
        &state.store,
        &record.site,
        &format!("database {}", record.name),
        JobId::generate(),
        DbJob::Verify { target },
    )
    .await
    {
        DbJobEnd::Done {
            outcome: DbOutcome::Verified { server_version },
            ..
        } => Ok(server_version),
        DbJobEnd::Done { outcome, .. } => Err(format!("unexpected answer {outcome:?}")),
        DbJobEnd::NotChanged(message) | DbJobEnd::Unknown(message) => Err(message),
    }
}

fn reset_connection(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let name = request.param("name");
        let record =
            model::get_connection(&state.store, &request.mount, name)?.ok_or_else(|| {
                ApiError::bad_request(format!(
                    "connection '{name}' does not exist at {}config/",
                    request.mount
                ))
            })?;
        let server_version = verify(&state, &request.mount, &record)
            .await
            .map_err(|message| ApiError::internal(format!("connection {name}: {message}")))?;
        Ok(ApiResponse::data(
            data_map! { "server_version" => server_version },
        ))
    })
}

fn delete_connection(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let mount = request.mount.clone();
        let name = request.param("name").to_string();
        let leases = state
            .leases
            .of_kind(SECRET_KIND)
            .map_err(|error| ApiError::internal(error.to_string()))?;
        let holding = leases
            .iter()
            .filter_map(creds::lease_data)
            .filter(|data| data.mount == mount && data.db_name == name)
            .count();
        if holding > 0 {
            return Err(ApiError::bad_request(format!(
                "connection {name} still has {holding} leases, whose roles only it can drop; revoke them first (rotor lease revoke -prefix {mount}creds/ROLE), then delete"
            )));
        }
        state
            .store
            .write(|tx| tx.delete(Table::DatabaseConnections, &model::key(&mount, &name)))?;
        Ok(ApiResponse::empty())
    })
}

fn role_data(record: &RoleRecord) -> serde_json::Map<String, Value> {
    data_map! {
        "db_name" => record.db_name,
        "creation_statements" => record.creation_statements,
        "revocation_statements" => record.revocation_statements,
        "rollback_statements" => record.rollback_statements,
        "renew_statements" => record.renew_statements,
        "default_ttl" => record.default_ttl_secs,
        "max_ttl" => record.max_ttl_secs,
        "revoke_terminates_sessions" => record.revoke_terminates_sessions,
        "credential_type" => "password",
    }
}

fn list_roles(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        Ok(ApiResponse::keys(model::list_roles(
            &state.store,
            &request.mount,
        )?))
    })
}

fn read_role(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let name = request.param("name");
        let record = model::get_role(&state.store, &request.mount, name)?.ok_or_else(|| {
            ApiError::not_found(format!(
                "role '{name}' does not exist at {}roles/",
                request.mount
            ))
        })?;
        Ok(ApiResponse::data(role_data(&record)))
    })
}

fn write_role(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let mount = request.mount.clone();
        let name = request.param("name").to_string();
        rotor_common::names::validate_object_name("role", &name)
            .map_err(|invalid| ApiError::bad_request(invalid.to_string()))?;
        let existing = model::get_role(&state.store, &mount, &name)?;
        let db_name = request
            .string("db_name")?
            .filter(|db| !db.is_empty())
            .or(existing.as_ref().map(|record| record.db_name.clone()))
            .ok_or_else(|| {
                ApiError::bad_request("missing required field 'db_name': the connection (database/config/NAME) the role uses")
            })?;
        let connection = model::get_connection(&state.store, &mount, &db_name)?.ok_or_else(|| {
            ApiError::bad_request(format!(
                "field 'db_name': connection '{db_name}' does not exist at {mount}config/; write it first"
            ))
        })?;
        if !creds::role_allowed(&connection, &name) {
            return Err(ApiError::bad_request(format!(
                "role '{name}' is not in the field 'allowed_roles' of connection {db_name} ({}); add it there first",
                connection.allowed_roles.join(",")
            )));
        }
        if let Some(credential_type) = request.string("credential_type")?
            && credential_type != "password"
        {
            return Err(ApiError::bad_request(format!(
                "field 'credential_type': '{credential_type}' is not supported; only password"
            )));
        }
        let creation_statements = statements(&request, "creation_statements")?
            .or(existing
                .as_ref()
                .map(|record| record.creation_statements.clone()))
            .unwrap_or_default();
        if creation_statements.is_empty() {
            return Err(ApiError::bad_request(
                "missing required field 'creation_statements': e.g. CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'",
            ));
        }
        let joined = creation_statements.join("\n");
        for placeholder in ["{{name}}", "{{password}}"] {
            if !joined.contains(placeholder) {
                return Err(ApiError::bad_request(format!(
                    "field 'creation_statements': {placeholder} is missing, so the role Rotor creates could not be {}",
                    if placeholder == "{{name}}" {
                        "named, tracked and dropped"
                    } else {
                        "logged into with the password Rotor issues"
                    }
                )));
            }
        }
        let default_ttl_secs = match request.duration("default_ttl")? {
            Some(duration) => duration.as_secs(),
            None => existing
                .as_ref()
                .map(|record| record.default_ttl_secs)
                .unwrap_or(0),
        };
        let max_ttl_secs = match request.duration("max_ttl")? {
            Some(duration) => duration.as_secs(),
            None => existing
                .as_ref()
                .map(|record| record.max_ttl_secs)
                .unwrap_or(0),
        };
        if max_ttl_secs > 0 && default_ttl_secs > max_ttl_secs {
            return Err(ApiError::bad_request(format!(
                "field 'default_ttl': {default_ttl_secs}s is above max_ttl ({max_ttl_secs}s)"
            )));
        }
        if connection.verify_connection {
            rehearse(&state, &mount, &connection, &creation_statements)
                .await
                .map_err(|message| {
                    ApiError::bad_request(format!(
                        "field 'creation_statements': the database refused them in a rehearsal (rolled back, nothing was created): {message}; the role was not saved (verify_connection=false on connection {} skips this check)",
                        connection.name
                    ))
                })?;
        }
        let keep = |field: &str, old: Option<&Vec<String>>| -> Result<Vec<String>, ApiError> {
            Ok(statements(&request, field)?
                .or(old.cloned())
                .unwrap_or_default())
        };
        let record = RoleRecord {
            name: name.clone(),
            db_name,
            creation_statements,
            revocation_statements: keep(
                "revocation_statements",
                existing
                    .as_ref()
                    .map(|record| &record.revocation_statements),
            )?,
            rollback_statements: keep(
                "rollback_statements",
                existing.as_ref().map(|record| &record.rollback_statements),
            )?,
            renew_statements: keep(
                "renew_statements",
                existing.as_ref().map(|record| &record.renew_statements),
            )?,
            default_ttl_secs,
            max_ttl_secs,
            revoke_terminates_sessions: request
                .bool("revoke_terminates_sessions")?
                .or(existing
                    .as_ref()
                    .map(|record| record.revoke_terminates_sessions))
                .unwrap_or(true),
        };
        state
            .store
            .write(|tx| tx.put(Table::DatabaseRoles, &model::key(&mount, &name), &record))?;
        Ok(ApiResponse::empty())
    })
}

/// Runs `statements` for a throwaway role name on an agent, in a transaction always rolled
/// back, so a role's mistakes show when it is written instead of at creds time.
async fn rehearse(
    state: &AppState,
    mount: &str,
    connection: &ConnectionRecord,
    statements: &[String],
) -> Result<(), String> {
    let target =
        model::target(&state.store, mount, connection).map_err(|error| error.to_string())?;
    let password =
        creds::fresh_password(&state.store, connection).map_err(|error| error.message)?;
    let suffix = creds::random_alphanumeric(12);
    match jobs::run(
        &state.dispatcher,
        &state.store,
        &connection.site,
        &format!("database {}", connection.name),
        JobId::generate(),
        DbJob::RehearseCreation {
            target,
            role: RoleValues {
                name: format!("rotor-rehearsal-{suffix}"),
                password: Some(password),
                expiration: Some(creds::expiration_text(crate::tokens::now_unix() + 300)),
            },
            statements: statements.to_vec(),
        },
    )
    .await
    {
        DbJobEnd::Done {
            outcome: DbOutcome::CreationRehearsed,
            ..
        } => Ok(()),
        DbJobEnd::Done { outcome, .. } => Err(format!("unexpected answer {outcome:?}")),
        DbJobEnd::NotChanged(message) | DbJobEnd::Unknown(message) => Err(message),
    }
}

fn delete_role(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let key = model::key(&request.mount, request.param("name"));
        state
            .store
            .write(|tx| tx.delete(Table::DatabaseRoles, &key))?;
        Ok(ApiResponse::empty())
    })
}
