//! The OS engine's path table: config, hosts, accounts, creds, rotate, versions, restore,
//! reset, verify, reconcile, as the reference's OS engine lays them out.
//!
//! Owns input validation for these paths (400s that name the field) and rendering answers.
//! Rotation work is the driver's; record changes are the model's.

use std::sync::LazyLock;

use rotor_common::names::{
    parse_host_address, quote_for_message, validate_object_name, validate_username,
};
use rotor_common::secret::Password;
use russh::keys::ssh_key::{Algorithm, PublicKey};
use serde_json::{Map, Value, json};

use super::model::{self, AccountRecord, AccountStatus, Connection, HostRecord};
use super::site;
use crate::api::paths::{Field, FieldKind, HandlerFuture, Operation, PathSpec, Request};
use crate::api::{ApiError, ApiResponse, AppState};
use crate::data_map;
use crate::dispatch::registry;
use crate::store::Table;
use crate::tokens::now_unix;

const ACCOUNT_FIELDS: &[Field] = &[
    Field::new(
        "username",
        FieldKind::String,
        "the Linux account name on the host",
    ),
    Field::new(
        "password",
        FieldKind::String,
        "the account's current password",
    )
    .sensitive(),
    Field::new(
        "parent_ref",
        FieldKind::String,
        "an account of the same host that rotates this one with sudo chpasswd",
    ),
    Field::new(
        "verify_connection",
        FieldKind::Bool,
        "log in with the credentials before saving (default true)",
    ),
    Field::new(
        "disable_automated_rotation",
        FieldKind::Bool,
        "never rotate on a schedule",
    ),
    Field::new("rotation_period", FieldKind::Duration, "rotate this often"),
    Field::new(
        "rotation_schedule",
        FieldKind::String,
        "rotate on this cron schedule",
    ),
    Field::new(
        "rotation_window",
        FieldKind::Duration,
        "how late a scheduled rotation may still start",
    ),
    Field::new(
        "auto_reconcile",
        FieldKind::Bool,
        "when found out of sync, set a fresh password through the parent",
    ),
    Field::new(
        "lazy_rotation",
        FieldKind::Bool,
        "rotate only when the credentials are read past their rotation time, never from the scheduler",
    ),
    Field::new(
        "password_policy",
        FieldKind::String,
        "the password policy (sys/policies/password) for this account's new passwords",
    ),
    Field::new(
        "verify_period",
        FieldKind::Duration,
        "log in with the known password this often (a heartbeat; 0 turns it off)",
    ),
];

const HOST_FIELDS: &[Field] = &[
    Field::new(
        "address",
        FieldKind::String,
        "DNS name or IP address the site's agent connects to",
    ),
    Field::new("port", FieldKind::Int, "SSH port (default 22)"),
    Field::new(
        "ssh_host_key",
        FieldKind::String,
        "the host's SSH public key, OpenSSH format (ssh-keyscan output without the host name)",
    ),
    Field::new(
        "site",
        FieldKind::String,
        "the site whose agents can reach this host (default: config's default_site, else the only site with agents, else `default`; chosen at write)",
    ),
    Field::new(
        "connection",
        FieldKind::String,
        "ssh (default) or local (an agent on the host itself)",
    ),
    Field::new(
        "agent",
        FieldKind::String,
        "with connection=local: the id of the agent on this host",
    ),
    Field::new(
        "chpasswd_command",
        FieldKind::String,
        "what a parent runs under sudo -n (default /usr/sbin/chpasswd)",
    ),
    Field::new(
        "passwd_prompts",
        FieldKind::String,
        "JSON overriding passwd's prompts on this host",
    ),
    Field::new(
        "password_policy",
        FieldKind::String,
        "the password policy (sys/policies/password) for this host's accounts",
    ),
];

const CONFIG_FIELDS: &[Field] = &[
    Field::new(
        "ssh_host_key_trust_on_first_use",
        FieldKind::Bool,
        "trust and record the key a host offers at first contact",
    ),
    Field::new(
        "connect_timeout",
        FieldKind::Duration,
        "bound on connecting to a host (default 10s)",
    ),
    Field::new(
        "step_timeout",
        FieldKind::Duration,
        "bound on each step on a host (default 30s)",
    ),
    Field::new(
        "rotation_deadline",
        FieldKind::Duration,
        "bound on a whole rotation job (default 120s)",
    ),
    Field::new(
        "password_length",
        FieldKind::Int,
        "length of generated passwords (default 24)",
    ),
    Field::new(
        "password_policy",
        FieldKind::String,
        "the password policy (sys/policies/password) for new passwords; the built-in default otherwise",
    ),
    Field::new(
        "default_site",
        FieldKind::String,
        "the site of hosts written without one (empty: the only site with agents, else `default`)",
    ),
];

const ROTATE_HOST_FIELDS: &[Field] = &[Field::new(
    "accounts",
    FieldKind::StringList,
    "only these accounts of the host (default: every account)",
)];

const RESET_FIELDS: &[Field] = &[Field::new(
    "password",
    FieldKind::String,
    "the password the host really has",
)
.required()
.sensitive()];

static PATHS: LazyLock<Vec<PathSpec>> = LazyLock::new(|| {
    let spec = PathSpec::new;
    vec![
        spec(
            "config",
            "Engine settings.",
            "How the engine reaches hosts and makes passwords: trust on first use of host keys, \
             connect and step timeouts, the bound on a whole rotation job, and the password \
             length or password policy new passwords come from (an account's or host's own \
             policy wins).",
            CONFIG_FIELDS,
            vec![
                (Operation::Read, read_config as fn(_, _) -> _),
                (Operation::Write, write_config),
            ],
        ),
        spec(
            "hosts",
            "Lists hosts.",
            "The names of every host of the mount.",
            &[],
            vec![(Operation::List, list_hosts)],
        ),
        spec(
            "hosts/{host}",
            "Creates, reads, updates or deletes a host.",
            "A host is a machine whose accounts Rotor rotates, reached by an agent of its site \
             over SSH (pinned ssh_host_key, or trust on first use) or, with connection=local, by \
             the agent on the host itself. A write creates or updates it; a delete is refused \
             while it still has accounts.",
            HOST_FIELDS,
            vec![
                (Operation::Read, read_host),
                (Operation::Write, write_host),
                (Operation::Delete, delete_host),
            ],
        ),
        spec(
            "hosts/{host}/rotate",
            "Rotates every account of the host, or those named in `accounts` (children of one parent in one job).",
            "New passwords for the host's accounts (all, or those named in accounts), children \
             of one parent batched into one job. Each account's result is answered; failures \
             are counted in failed and warned about, the others are committed.",
            ROTATE_HOST_FIELDS,
            vec![(Operation::Write, rotate_host)],
        ),
        spec(
            "rotate",
            "Fleet rotation in waves: the plan (dry_run, the default), or a run in the background.",
            "Selects accounts by site, host glob and account glob, and plans waves: a canary \
             wave, then wave_size hosts a wave, at most max_parallel_per_site at once per site. \
             dry_run (the default) answers the plan only; dry_run=false starts the run in the \
             background and answers its id (watch it at rotations/<id> or with rotor rotation \
             watch). The run stops once more than failure_threshold accounts failed; hosts not \
             started are left untouched.",
            super::rollout::ROTATE_FIELDS,
            vec![(Operation::Write, super::rollout::rotate)],
        ),
        spec(
            "rotations",
            "Lists fleet rotation runs.",
            "The ids of every fleet rotation run of the mount.",
            &[],
            vec![(Operation::List, super::rollout::list_runs)],
        ),
        spec(
            "rotations/{id}",
            "A fleet rotation's progress: each account succeeded, failed or not attempted.",
            "The run's state (running, stopped, completed, interrupted), its plan, and each \
             account's state and error.",
            &[],
            vec![(Operation::Read, super::rollout::read_run)],
        ),
        spec(
            "rotations/{id}/stop",
            "Stops a running fleet rotation: no more hosts start.",
            "Hosts rotating when the stop arrives finish (a rotation is never abandoned \
             midway); hosts not started are left untouched and read not_attempted, and the \
             run ends stopped with the reason. A run that is not running is a 400.",
            &[],
            vec![(Operation::Write, super::rollout::stop_run)],
        ),
        spec(
            "hosts/{host}/accounts",
            "Lists a host's accounts.",
            "The names of the host's accounts.",
            &[],
            vec![(Operation::List, list_accounts)],
        ),
        spec(
            "hosts/{host}/accounts/{account}",
            "Creates, reads, updates or deletes an account.",
            "An account is a Linux account on the host whose password Rotor keeps and rotates. \
             Creating one takes its current password (checked by logging in unless \
             verify_connection=false). A parent_ref account of the same host rotates it with \
             sudo chpasswd. Rotation runs every rotation_period or on a rotation_schedule, \
             or lazily when its credentials are read past their time (lazy_rotation); a \
             verify_period heartbeat checks the known password still logs in.",
            ACCOUNT_FIELDS,
            vec![
                (Operation::Read, read_account),
                (Operation::Write, write_account),
                (Operation::Delete, delete_account),
            ],
        ),
        spec(
            "hosts/{host}/accounts/{account}/creds",
            "The account's current credentials.",
            "The username and current password, with its version and when the next rotation \
             is due; a warning when the account is out of sync. With lazy_rotation, an \
             account past its time rotates first.",
            &[],
            vec![(Operation::Read, read_creds)],
        ),
        spec(
            "hosts/{host}/accounts/{account}/rotate",
            "Rotates the account's password on the host now.",
            "A new password is set on the host and committed only once the host confirmed it \
             (or a login with it succeeded); answers the new version. A failure is a 400 with \
             the reason.",
            &[],
            vec![(Operation::Write, rotate_account)],
        ),
        spec(
            "hosts/{host}/accounts/{account}/versions",
            "Versions of the account's password.",
            "Every kept version with when it was created and expired, and the current and \
             oldest version numbers; never the passwords.",
            &[],
            vec![
                (Operation::Read, read_versions),
                (Operation::Write, read_versions),
            ],
        ),
        spec(
            "hosts/{host}/accounts/{account}/versions/{version}/restore",
            "Makes a past version current again (the host is not changed).",
            "Copies the password of the named version into a new current version. Use it when \
             the host was restored to that password; Rotor does not change the host.",
            &[],
            vec![(Operation::Write, restore_version)],
        ),
        spec(
            "hosts/{host}/accounts/{account}/reset",
            "Sets the password Rotor knows (the host is not changed).",
            "Records the password the host really has as a new version, after someone changed \
             it outside Rotor. Nothing is sent to the host.",
            RESET_FIELDS,
            vec![(Operation::Write, reset)],
        ),
        spec(
            "hosts/{host}/accounts/{account}/verify",
            "Checks that the known password still logs in; changes nothing.",
            "Logs in with the current password through an agent and answers in_sync. An \
             account where it fails is marked out_of_sync, with a warning.",
            &[],
            vec![(Operation::Write, verify)],
        ),
        spec(
            "hosts/{host}/accounts/{account}/reconcile",
            "Sets a fresh password through the parent and commits it.",
            "For an out-of-sync account with a parent_ref: the parent sets a new password with \
             sudo chpasswd, and it is committed once confirmed; answers the new version.",
            &[],
            vec![(Operation::Write, reconcile)],
        ),
    ]
});

pub fn paths() -> &'static [PathSpec] {
    &PATHS
}

fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix))
        .to_string()
}

/// A host's or an account's name from the path: it is a path segment (no `.` or `..`).
fn check_object_name(kind: &'static str, name: &str) -> Result<(), ApiError> {
    validate_object_name(kind, name).map_err(|invalid| ApiError::bad_request(invalid.to_string()))
}

/// A site name in `field`: the rule agents' sites follow, or no agent could ever serve it.
fn check_site_name(field: &str, site: &str) -> Result<(), ApiError> {
    if registry::is_valid_site_name(site) {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "field '{field}': {} is not a valid site name ({})",
        quote_for_message(site),
        registry::SITE_NAME_RULE
    )))
}

/// Reads `ssh_host_key` as the agent will (an OpenSSH public key line, `ssh-ed25519 AAAA…
/// [comment]`) and answers the line to store: single spaces, no control characters.
fn parse_host_key(host: &str, text: &str) -> Result<String, ApiError> {
    let refuse = |problem: String| {
        ApiError::bad_request(format!(
            "field 'ssh_host_key' of host {host}: {problem}; expected one line of ssh-keyscan output without the host name, such as 'ssh-ed25519 AAAA…'"
        ))
    };
    // The agent's parser takes exactly one space between the fields.
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some(control) = line.chars().find(|c| c.is_control()) {
        return Err(refuse(format!(
            "it contains the control character {}",
            quote_for_message(&control.to_string())
        )));
    }
    let key = PublicKey::from_openssh(&line)
        .map_err(|error| refuse(format!("not an OpenSSH public key ({error})")))?;
    match key.algorithm() {
        Algorithm::Ed25519 | Algorithm::Ecdsa { .. } | Algorithm::Rsa { .. } | Algorithm::Dsa => {}
        other => {
            return Err(refuse(format!(
                "{} is not a host key type (ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa)",
                quote_for_message(other.as_str())
            )));
        }
    }
    key.to_openssh()
        .map_err(|error| refuse(format!("the key cannot be written back ({error})")))
}

fn read_config(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let config = model::read_config(&state.store, &request.mount)?;
        Ok(ApiResponse::data(data_map! {
            "ssh_host_key_trust_on_first_use" => config.ssh_host_key_trust_on_first_use,
            "connect_timeout" => config.connect_timeout_secs,
            "step_timeout" => config.step_timeout_secs,
            "rotation_deadline" => config.rotation_deadline_secs,
            "password_length" => config.password_length,
            "password_policy" => config.password_policy,
            "default_site" => config.default_site,
        }))
    })
}

fn write_config(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let mut config = model::read_config(&state.store, &request.mount)?;
        if let Some(flag) = request.bool("ssh_host_key_trust_on_first_use")? {
            config.ssh_host_key_trust_on_first_use = flag;
        }
        let bounded = |field: &str,
                       value: Option<std::time::Duration>,
                       max: u64|
         -> Result<Option<u64>, ApiError> {
            match value {
                Some(duration) if duration.as_secs() == 0 || duration.as_secs() > max => Err(
                    ApiError::bad_request(format!("field '{field}' must be between 1s and {max}s")),
                ),
                other => Ok(other.map(|d| d.as_secs())),
            }
        };
        if let Some(secs) = bounded("connect_timeout", request.duration("connect_timeout")?, 300)? {
            config.connect_timeout_secs = secs;
        }
        if let Some(secs) = bounded("step_timeout", request.duration("step_timeout")?, 600)? {
            config.step_timeout_secs = secs;
        }
        if let Some(secs) = bounded(
            "rotation_deadline",
            request.duration("rotation_deadline")?,
            3600,
        )? {
            config.rotation_deadline_secs = secs;
        }
        if let Some(length) = request.int("password_length")? {
            if !(8..=128).contains(&length) {
                return Err(ApiError::bad_request(
                    "field 'password_length' must be between 8 and 128",
                ));
            }
            config.password_length = length as usize;
        }
        if let Some(name) = request.string("password_policy")? {
            super::password::check_named_policy(&state.store, &name)?;
            config.password_policy = Some(name).filter(|name| !name.is_empty());
        }
        if let Some(site) = request.string("default_site")? {
            let site = site.trim().to_string();
            if !site.is_empty() {
                check_site_name("default_site", &site)?;
            }
            config.default_site = Some(site).filter(|site| !site.is_empty());
        }
        model::write_config(&state.store, &request.mount, &config)?;
        Ok(ApiResponse::empty())
    })
}

fn list_hosts(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let hosts = state
            .store
            .scan::<HostRecord>(Table::Hosts, &request.mount)?;
        let keys = hosts.into_iter().map(|(_, host)| host.name).collect();
        Ok(ApiResponse::keys(keys))
    })
}

fn host_json(host: &HostRecord) -> Map<String, Value> {
    data_map! {
        "address" => host.address,
        "port" => host.port,
        "ssh_host_key" => host.ssh_host_key,
        "trusted_host_key" => host.trusted_host_key,
        "site" => host.site,
        "connection" => match host.connection { Connection::Ssh => "ssh", Connection::Local => "local" },
        "agent" => host.agent,
        "chpasswd_command" => host.chpasswd_command,
        "passwd_prompts" => host.passwd_prompts_json,
        "password_policy" => host.password_policy,
    }
}

fn read_host(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let name = request.param("host");
        let host = model::get_host(&state.store, &request.mount, name)?
            .ok_or_else(|| ApiError::not_found(format!("host {name} does not exist")))?;
        Ok(ApiResponse::data(host_json(&host)))
    })
}

fn write_host(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let name = request.param("host").to_string();
        check_object_name("host", &name)?;
        let existing = model::get_host(&state.store, &request.mount, &name)?;
        let mut host = existing.clone().unwrap_or(HostRecord {
            name: name.clone(),
            address: String::new(),
            port: 22,
            ssh_host_key: None,
            trusted_host_key: None,
            site: None,
            connection: Connection::Ssh,
            agent: None,
            chpasswd_command: "/usr/sbin/chpasswd".into(),
            passwd_prompts_json: None,
            created_unix: now_unix(),
            password_policy: None,
        });
        if let Some(address) = request.string("address")? {
            let address = address.trim();
            host.address = if address.is_empty() {
                String::new()
            } else {
                parse_host_address(address)
                    .map_err(|invalid| {
                        ApiError::bad_request(format!("field 'address' of host {name}: {invalid}"))
                    })?
                    .to_string()
            };
        }
        if host.address.is_empty() {
            return Err(ApiError::bad_request(
                "missing required field 'address': the host's DNS name or IP address",
            ));
        }
        if let Some(port) = request.int("port")? {
            host.port = u16::try_from(port)
                .ok()
                .filter(|port| *port > 0)
                .ok_or_else(|| {
                    ApiError::bad_request(format!("field 'port': {port} is out of range (1-65535)"))
                })?;
        }
        if let Some(key) = request.string("ssh_host_key")? {
            let key = key.trim().to_string();
            if key.is_empty() {
                host.ssh_host_key = None;
            } else {
                host.ssh_host_key = Some(parse_host_key(&name, &key)?);
            }
        }
        if let Some(site) = request.string("site")? {
            let site = site.trim().to_string();
            if !site.is_empty() {
                check_site_name("site", &site)?;
            }
            host.site = Some(site).filter(|s| !s.is_empty());
        }
        if let Some(connection) = request.string("connection")? {
            host.connection = match connection.as_str() {
                "ssh" => Connection::Ssh,
                "local" => Connection::Local,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "field 'connection': '{other}' is not ssh or local"
                    )));
                }
            };
        }
        if let Some(agent) = request.string("agent")? {
            if !agent.is_empty() {
                // The id an agent's certificate names: anything else could never be served.
                rotor_common::ids::AgentId::new(agent.as_str()).map_err(|error| {
                    ApiError::bad_request(format!(
                        "field 'agent' of host {}: {error}; use the agent_id that agents/enroll answered",
                        host.name
                    ))
                })?;
            }
            host.agent = Some(agent).filter(|a| !a.is_empty());
        }
        if let Some(command) = request.string("chpasswd_command")? {
            if !command.starts_with('/') || command.contains(char::is_whitespace) {
                return Err(ApiError::bad_request(
                    "field 'chpasswd_command' must be an absolute path without spaces",
                ));
            }
            host.chpasswd_command = command;
        }
        if let Some(prompts) = request.string("passwd_prompts")? {
            if prompts.is_empty() {
                host.passwd_prompts_json = None;
            } else {
                serde_json::from_str::<Value>(&prompts)
                    .ok()
                    .filter(Value::is_object)
                    .ok_or_else(|| {
                        ApiError::bad_request("field 'passwd_prompts' must be a JSON object")
                    })?;
                host.passwd_prompts_json = Some(prompts);
            }
        }
        if let Some(name) = request.string("password_policy")? {
            super::password::check_named_policy(&state.store, &name)?;
            host.password_policy = Some(name).filter(|name| !name.is_empty());
        }
        let mut warning = None;
        if host.connection == Connection::Ssh && host.site.is_none() {
            let config = model::read_config(&state.store, &request.mount)?;
            let sites = registry::sites_with_agents(&state.store)?;
            let choice = site::choose_site(config.default_site.as_deref(), &sites);
            warning = choice.warning(&request.mount, &name);
            tracing::info!(host = %name, site = %choice.site(), ?choice, "host written without a site");
            host.site = Some(choice.site().to_string());
        }
        match host.connection {
            Connection::Local if host.agent.is_none() => {
                return Err(ApiError::bad_request(
                    "field 'agent' is required with connection=local: the id of the agent on this host",
                ));
            }
            _ => {}
        }
        let key = model::host_key(&request.mount, &name);
        state.store.write(|tx| tx.put(Table::Hosts, &key, &host))?;
        Ok(match warning {
            Some(warning) => ApiResponse::empty().with_warning(warning),
            None => ApiResponse::empty(),
        })
    })
}

fn delete_host(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let name = request.param("host").to_string();
        let accounts = model::list_accounts(&state.store, &request.mount, &name)?;
        if !accounts.is_empty() {
            let names: Vec<String> = accounts.into_iter().map(|a| a.name).collect();
            return Err(ApiError::bad_request(format!(
                "host {name} still has accounts ({}); delete them first",
                names.join(", ")
            )));
        }
        let key = model::host_key(&request.mount, &name);
        state.store.write(|tx| tx.delete(Table::Hosts, &key))?;
        Ok(ApiResponse::empty())
    })
}

fn load_host(state: &AppState, request: &Request) -> Result<HostRecord, ApiError> {
    let name = request.param("host");
    model::get_host(&state.store, &request.mount, name)?
        .ok_or_else(|| ApiError::not_found(format!("host {name} does not exist")))
}

fn load_account(state: &AppState, request: &Request) -> Result<AccountRecord, ApiError> {
    let host = request.param("host");
    let name = request.param("account");
    model::get_account(&state.store, &request.mount, host, name)?
        .ok_or_else(|| ApiError::not_found(format!("account {name} does not exist on host {host}")))
}

fn list_accounts(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        load_host(&state, &request)?;
        let accounts = model::list_accounts(&state.store, &request.mount, request.param("host"))?;
        Ok(ApiResponse::keys(
            accounts.into_iter().map(|a| a.name).collect(),
        ))
    })
}

fn account_json(account: &AccountRecord) -> Map<String, Value> {
    data_map! {
        "username" => account.username,
        "parent_ref" => account.parent_ref,
        "verify_connection" => account.verify_connection,
        "disable_automated_rotation" => account.disable_automated_rotation,
        "rotation_period" => account.rotation_period_secs,
        "rotation_schedule" => account.rotation_schedule,
        "rotation_window" => account.rotation_window_secs,
        "auto_reconcile" => account.auto_reconcile,
        "lazy_rotation" => account.lazy_rotation,
        "password_policy" => account.password_policy,
        "next_vault_rotation" => crate::scheduler::next_rotation(account).map(rfc3339),
        "current_version" => account.current_version,
        "status" => account.status.name(),
        "out_of_sync" => account.status == AccountStatus::OutOfSync,
        "status_detail" => account.status_detail,
        "last_error" => account.last_error,
        "last_vault_rotation" => account.last_vault_rotation_unix.map(rfc3339),
        "retry_after" => account.retry_after_unix.map(rfc3339),
    }
}

fn read_account(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let account = load_account(&state, &request)?;
        let mut data = account_json(&account);
        let heartbeat =
            super::heartbeat::get(&state.store, &request.mount, &account.host, &account.name)?;
        data.extend(super::heartbeat::json(&heartbeat));
        Ok(ApiResponse::data(data))
    })
}

/// Follows parent links from `start`; refuses a cycle or a missing parent.
fn check_parent_chain(
    state: &AppState,
    mount: &str,
    host: &str,
    account: &str,
    parent: &str,
) -> Result<(), ApiError> {
    let mut seen = vec![account.to_string()];
    let mut next = Some(parent.to_string());
    while let Some(name) = next {
        if seen.contains(&name) {
            seen.push(name);
            return Err(ApiError::bad_request(format!(
                "field 'parent_ref': parent chain forms a cycle ({})",
                seen.join(" -> ")
            )));
        }
        let record = model::get_account(&state.store, mount, host, &name)?.ok_or_else(|| {
            ApiError::bad_request(format!(
                "field 'parent_ref': no account '{name}' on host {host}; create the parent account first"
            ))
        })?;
        seen.push(name);
        next = record.parent_ref;
    }
    Ok(())
}

fn write_account(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let mount = request.mount.clone();
        let host = load_host(&state, &request)?;
        let name = request.param("account").to_string();
        check_object_name("account", &name)?;
        let existing = model::get_account(&state.store, &mount, &host.name, &name)?;
        let mut account = existing
            .clone()
            .unwrap_or_else(|| AccountRecord::new(&host.name, &name));
        if let Some(username) = request.string("username")? {
            account.username = username;
        }
        if account.username.is_empty() {
            account.username = name.clone();
        }
        validate_username(&account.username)
            .map_err(|invalid| ApiError::bad_request(format!("field 'username': {invalid}")))?;
        if let Some(parent) = request.string("parent_ref")? {
            if parent.is_empty() {
                account.parent_ref = None;
            } else {
                if parent.contains('/') {
                    return Err(ApiError::bad_request(
                        "field 'parent_ref' names an account of the same host (no '/'): a parent on another host cannot run sudo here",
                    ));
                }
                check_parent_chain(&state, &mount, &host.name, &name, &parent)?;
                account.parent_ref = Some(parent);
            }
        }
        if let Some(flag) = request.bool("verify_connection")? {
            account.verify_connection = flag;
        }
        if let Some(flag) = request.bool("disable_automated_rotation")? {
            account.disable_automated_rotation = flag;
        }
        if let Some(period) = request.duration("rotation_period")? {
            account.rotation_period_secs = Some(period.as_secs()).filter(|s| *s > 0);
        }
        if let Some(schedule) = request.string("rotation_schedule")? {
            if !schedule.is_empty() {
                crate::scheduler::parse_schedule(&schedule).map_err(|reason| {
                    ApiError::bad_request(format!("field 'rotation_schedule': {reason}"))
                })?;
            }
            account.rotation_schedule = Some(schedule).filter(|s| !s.is_empty());
        }
        if let Some(window) = request.duration("rotation_window")? {
            account.rotation_window_secs = Some(window.as_secs()).filter(|s| *s > 0);
        }
        if let Some(flag) = request.bool("auto_reconcile")? {
            account.auto_reconcile = flag;
        }
        if let Some(flag) = request.bool("lazy_rotation")? {
            account.lazy_rotation = flag;
        }
        if let Some(name) = request.string("password_policy")? {
            super::password::check_named_policy(&state.store, &name)?;
            account.password_policy = Some(name).filter(|name| !name.is_empty());
        }
        let verify_period = request.duration("verify_period")?;
        if account.rotation_schedule.is_some() && account.rotation_period_secs.is_some() {
            return Err(ApiError::bad_request(
                "set rotation_period or rotation_schedule, not both",
            ));
        }
        if account.rotation_window_secs.is_some() && account.rotation_schedule.is_none() {
            return Err(ApiError::bad_request(
                "field 'rotation_window' needs a rotation_schedule",
            ));
        }
        match existing {
            Some(stored) => {
                // The create command run again (a setup script, the reference's self-managed
                // setup after its parent-managed one) repeats the password Rotor already
                // holds: nothing to change. Any other password would be a reset in disguise.
                if let Some(given) = request.string("password")?
                    && Password::new(given)
                        != model::current_password(&state.store, &mount, &stored)?
                {
                    return Err(ApiError::bad_request(format!(
                        "field 'password' cannot change existing account {name} of host {}: use {mount}hosts/{}/accounts/{name}/reset (what Rotor knows) or .../rotate (the host); a write may repeat only the current password",
                        host.name, host.name
                    )));
                }
                model::update_account_settings(&state.store, &mount, &account)?;
            }
            None => {
                let password = Password::new(request.required_string("password")?);
                let config = model::read_config(&state.store, &mount)?;
                if host.connection == Connection::Ssh
                    && host.ssh_host_key.is_none()
                    && host.trusted_host_key.is_none()
                    && !config.ssh_host_key_trust_on_first_use
                {
                    return Err(ApiError::bad_request(format!(
                        "host {} has no ssh_host_key and trust on first use is off: pin its key (rotor write {}hosts/{} ssh_host_key=\"$(ssh-keyscan -t ed25519 HOST | cut -d' ' -f2-)\") or enable it (rotor write {}config ssh_host_key_trust_on_first_use=true)",
                        host.name, mount, host.name, mount
                    )));
                }
                if account.verify_connection && host.connection == Connection::Ssh {
                    state
                        .os
                        .check_login(&mount, &host, &account.username, &password)
                        .await?;
                }
                model::create_account(&state.store, &mount, account, &password)?;
            }
        }
        if let Some(period) = verify_period {
            super::heartbeat::set_period(
                &state.store,
                &mount,
                &host.name,
                &name,
                period.as_secs(),
                now_unix(),
            )?;
        }
        Ok(ApiResponse::empty())
    })
}

fn delete_account(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        model::delete_account(
            &state.store,
            &request.mount,
            request.param("host"),
            request.param("account"),
        )?;
        Ok(ApiResponse::empty())
    })
}

fn read_creds(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let mut account = load_account(&state, &request)?;
        if account.lazy_rotation
            && matches!(
                crate::scheduler::due(&account, now_unix()),
                crate::scheduler::Due::Now { .. }
            )
        {
            // Lazy rotation: past its time, the account rotates before its password is handed out.
            let report = state
                .os
                .rotate_account(&request.mount, &account.host, &account.name)
                .await?;
            if report.committed_version.is_none() {
                tracing::warn!(host = %account.host, account = %account.name, error = ?report.error, "lazy rotation failed; handing out the current password");
            }
            account = load_account(&state, &request)?;
        }
        let (current, password) = model::current_version(&state.store, &request.mount, &account)?;
        let created = rfc3339(current.created_unix);
        let next = match (
            account.rotation_period_secs,
            account.disable_automated_rotation,
        ) {
            (Some(period), false) => Some(
                account
                    .last_vault_rotation_unix
                    .unwrap_or(account.created_unix)
                    + period,
            ),
            _ => None,
        };
        let mut response = ApiResponse::data(data_map! {
            "username" => account.username,
            "password" => password.expose(),
            "version" => account.current_version,
            "created_time" => created,
            "last_vault_rotation" => account.last_vault_rotation_unix.map(rfc3339),
            "next_vault_rotation" => next.map(rfc3339),
            "ttl" => next.map(|n| n.saturating_sub(now_unix())),
            "status" => account.status.name(),
        });
        if account.status == AccountStatus::OutOfSync {
            response = response.with_warning(format!(
                "account is OUT OF SYNC: this password may not work on the host ({})",
                account.status_detail.unwrap_or_default()
            ));
        }
        Ok(response)
    })
}

fn report_response(report: super::driver::AccountReport) -> Result<ApiResponse, ApiError> {
    match (report.committed_version, report.error) {
        (Some(version), _) => Ok(ApiResponse::data(data_map! {
            "version" => version,
            "status" => report.status.name(),
        })),
        (None, Some(error)) => Err(ApiError::bad_request(format!(
            "rotation of {} failed: {error}",
            report.account
        ))),
        (None, None) => Err(ApiError::internal(format!(
            "rotation of {} ended without a result",
            report.account
        ))),
    }
}

fn rotate_account(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let report = state
            .os
            .rotate_account(
                &request.mount,
                request.param("host"),
                request.param("account"),
            )
            .await?;
        report_response(report)
    })
}

fn rotate_host(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let host = request.param("host");
        let reports = match request.string_list("accounts")? {
            None => state.os.rotate_host(&request.mount, host).await?,
            Some(names) if names.is_empty() => {
                return Err(ApiError::bad_request(format!(
                    "field 'accounts' is empty: name accounts of host {host}, or leave it out to rotate them all"
                )));
            }
            Some(names) => {
                let known = model::list_accounts(&state.store, &request.mount, host)?;
                if let Some(unknown) = names
                    .iter()
                    .find(|name| !known.iter().any(|account| &account.name == *name))
                {
                    return Err(ApiError::bad_request(format!(
                        "field 'accounts': {unknown} is not an account of host {host}"
                    )));
                }
                state
                    .os
                    .rotate_accounts(&request.mount, host, Some(&names))
                    .await?
            }
        };
        let mut accounts = Map::new();
        let mut failed = 0;
        for report in reports {
            if report.error.is_some() && report.committed_version.is_none() {
                failed += 1;
            }
            accounts.insert(
                report.account.clone(),
                json!({
                    "version": report.committed_version,
                    "status": report.status.name(),
                    "error": report.error,
                }),
            );
        }
        let response = ApiResponse::data(
            data_map! { "accounts" => Value::Object(accounts), "failed" => failed },
        );
        Ok(if failed > 0 {
            response.with_warning(format!("{failed} account(s) were not rotated"))
        } else {
            response
        })
    })
}

fn read_versions(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let account = load_account(&state, &request)?;
        let versions = model::list_versions(&state.store, &request.mount, &account)?;
        let mut map = Map::new();
        for version in &versions {
            map.insert(version.version.to_string(), json!({
                "created_time": rfc3339(version.created_unix),
                "expired_time": version.expired_unix.map(rfc3339).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
            }));
        }
        Ok(ApiResponse::data(data_map! {
            "current_version" => account.current_version,
            "oldest_version" => versions.first().map(|v| v.version),
            "created_time" => rfc3339(account.created_unix),
            "ttl" => Value::Null,
            "versions" => Value::Object(map),
        }))
    })
}

fn restore_version(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version: u64 = request.param("version").parse().map_err(|_| {
            ApiError::bad_request(format!(
                "version '{}' is not a number",
                request.param("version")
            ))
        })?;
        let new_version = model::restore_version(
            &state.store,
            &request.mount,
            request.param("host"),
            request.param("account"),
            version,
        )?;
        Ok(ApiResponse::data(
            data_map! { "version" => new_version, "restored_from" => version },
        ))
    })
}

fn reset(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let password = Password::new(request.required_string("password")?);
        let version = model::reset_password(
            &state.store,
            &request.mount,
            request.param("host"),
            request.param("account"),
            &password,
        )?;
        Ok(ApiResponse::data(data_map! { "version" => version }))
    })
}

fn verify(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let in_sync = state
            .os
            .verify_current(
                &request.mount,
                request.param("host"),
                request.param("account"),
            )
            .await?;
        let response = ApiResponse::data(data_map! { "in_sync" => in_sync });
        Ok(if in_sync {
            response
        } else {
            response.with_warning(
                "the known password no longer logs in: the account is marked out_of_sync",
            )
        })
    })
}

fn reconcile(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let report = state
            .os
            .reconcile(
                &request.mount,
                request.param("host"),
                request.param("account"),
            )
            .await?;
        report_response(report)
    })
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use serde_json::{Value, json};

    use crate::api::paths::Operation;
    use crate::api::{ApiError, ApiResponse, AppState};

    const HOST_KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB5m6X3b1x9Qm9l5jF0yVQ0P0n7p7q8mY0cZ2b7e6a5d";

    async fn call(
        state: &AppState,
        operation: Operation,
        path: &str,
        body: Value,
    ) -> Result<ApiResponse, ApiError> {
        crate::testing::call(state, super::paths(), "os/", operation, path, body).await
    }

    async fn write(state: &AppState, path: &str, body: Value) -> Result<ApiResponse, ApiError> {
        call(state, Operation::Write, path, body).await
    }

    /// Expects a 400 whose message contains every one of `parts`.
    async fn refused(state: &AppState, path: &str, body: Value, parts: &[&str]) {
        let error = write(state, path, body.clone())
            .await
            .err()
            .unwrap_or_else(|| panic!("{path:?} {body} was accepted; expected {parts:?}"));
        assert_eq!(error.status, StatusCode::BAD_REQUEST, "{error}");
        for part in parts {
            assert!(
                error.message.contains(part),
                "expected '{part}' in: {}",
                error.message
            );
        }
    }

    fn host(extra: Value) -> Value {
        let mut body = json!({"address": "192.0.2.10", "site": "dc1", "ssh_host_key": HOST_KEY});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        body
    }

    async fn read_host(state: &AppState, name: &str) -> Value {
        let response = call(state, Operation::Read, &format!("hosts/{name}"), json!({}))
            .await
            .unwrap_or_else(|error| panic!("reading host {name}: {error}"));
        Value::Object(response.data.unwrap_or_default())
    }

    fn enrolled_agent(state: &AppState, id: &str, site: &str, revoked: bool) {
        crate::dispatch::registry::register_agent(
            &state.store,
            &crate::dispatch::registry::AgentRecord {
                id: id.into(),
                site: site.into(),
                enrolled_unix: 1,
                certificate_serial: "01".into(),
                certificate_not_after_unix: 2,
                agent_version: "test".into(),
                revoked_unix: revoked.then_some(3),
                last_seen_unix: None,
                last_remote_address: None,
            },
        )
        .expect("agent registered");
    }

    /// The reference's host write: address and port, no site (and a pinned key).
    async fn write_without_site(state: &AppState, name: &str) -> ApiResponse {
        write(
            state,
            &format!("hosts/{name}"),
            json!({"address": "box.example.com", "port": 22, "ssh_host_key": HOST_KEY}),
        )
        .await
        .unwrap_or_else(|error| panic!("host {name} without a site: {error}"))
    }

    #[tokio::test]
    async fn a_host_without_site_gets_the_default_site_at_write() {
        let state = crate::testing::services();
        // No agent anywhere: `default`, with a warning that says what to do.
        let answer = write_without_site(&state, "my-box").await;
        assert_eq!(read_host(&state, "my-box").await["site"], "default");
        assert_eq!(answer.warnings.len(), 1, "{:?}", answer.warnings);
        assert!(
            answer.warnings[0].contains("host my-box is in site 'default'")
                && answer.warnings[0].contains("agents/enroll"),
            "{:?}",
            answer.warnings
        );

        // One site with agents (a revoked agent's site does not count): that site.
        enrolled_agent(&state, "agent-1", "dc1", false);
        enrolled_agent(&state, "agent-2", "dc1", false);
        enrolled_agent(&state, "agent-3", "old", true);
        let answer = write_without_site(&state, "box-2").await;
        assert_eq!(read_host(&state, "box-2").await["site"], "dc1");
        assert!(answer.warnings.is_empty(), "{:?}", answer.warnings);

        // Resolved once: an update without a site keeps it, even when agents change.
        enrolled_agent(&state, "agent-4", "dc2", false);
        write(&state, "hosts/box-2", json!({"port": 2222}))
            .await
            .expect("update");
        assert_eq!(read_host(&state, "box-2").await["site"], "dc1");

        // Two sites with agents: none is guessed.
        write_without_site(&state, "box-3").await;
        assert_eq!(read_host(&state, "box-3").await["site"], "default");

        // The engine's default_site wins over agents; a given site over everything.
        write(&state, "config", json!({"default_site": "dc2"}))
            .await
            .expect("default_site");
        let config = call(&state, Operation::Read, "config", json!({}))
            .await
            .expect("config");
        assert_eq!(config.data.unwrap_or_default()["default_site"], "dc2");
        write_without_site(&state, "box-4").await;
        assert_eq!(read_host(&state, "box-4").await["site"], "dc2");
        write(&state, "hosts/box-5", host(json!({"site": "lab"})))
            .await
            .expect("explicit site");
        assert_eq!(read_host(&state, "box-5").await["site"], "lab");

        // Site names follow the agents' rule.
        refused(
            &state,
            "hosts/box-6",
            host(json!({"site": "Bad Site"})),
            &["field 'site':", "not a valid site name", "lowercase"],
        )
        .await;
        refused(
            &state,
            "config",
            json!({"default_site": "a/b"}),
            &["field 'default_site':", "not a valid site name"],
        )
        .await;
    }

    #[tokio::test]
    async fn agents_enrolled_without_site_join_default() {
        let state = crate::testing::services();
        let answer = crate::testing::call(
            &state,
            crate::api::agents::paths(),
            "agents/",
            Operation::Write,
            "enroll",
            json!({}),
        )
        .await
        .expect("enrollment without a site");
        assert_eq!(answer.data.unwrap_or_default()["site"], "default");
    }

    #[tokio::test]
    async fn a_site_without_agents_fails_at_first_contact_naming_host_site_and_fix() {
        let state = crate::testing::services();
        write_without_site(&state, "my-box").await;
        let started = std::time::Instant::now();
        let error = write(
            &state,
            "hosts/my-box/accounts/mgmt-user",
            json!({"username": "super-user", "password": "super-secret"}),
        )
        .await
        .expect_err("no agent can reach the host");
        assert_eq!(error.status, StatusCode::BAD_REQUEST, "{error}");
        for part in [
            "host my-box is in site 'default'",
            "no enrolled agent",
            "rotor write agents/enroll site=default",
            "rotor write os/hosts/my-box site=SITE",
        ] {
            assert!(error.message.contains(part), "'{part}' in: {error}");
        }
        // Known at once: nothing to wait for when the site has no agent at all.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        // Deferred first contact: the account is saved, its rotation fails the same way.
        write(
            &state,
            "hosts/my-box/accounts/my-user",
            json!({"username": "user-1", "password": "bigsecret", "verify_connection": false}),
        )
        .await
        .expect("saved without contact");
        let error = write(&state, "hosts/my-box/accounts/my-user/rotate", json!({}))
            .await
            .expect_err("rotation cannot reach the host");
        assert!(
            error
                .message
                .contains("host my-box is in site 'default', which has no enrolled agent"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn writing_an_account_again_may_repeat_only_its_current_password() {
        let state = crate::testing::services();
        write(&state, "hosts/web", host(json!({})))
            .await
            .expect("host");
        let create =
            json!({"username": "user-1", "password": "bigsecret", "verify_connection": false});
        write(&state, "hosts/web/accounts/app-user", create.clone())
            .await
            .expect("created");
        write(&state, "hosts/web/accounts/app-user", create)
            .await
            .expect("the same command again changes nothing");
        refused(
            &state,
            "hosts/web/accounts/app-user",
            json!({"password": "other"}),
            &[
                "field 'password' cannot change existing account app-user",
                "/reset",
            ],
        )
        .await;
    }

    #[tokio::test]
    async fn hosts_named_dot_or_dot_dot_are_refused() {
        let state = crate::testing::services();
        for name in [".", ".."] {
            refused(
                &state,
                &format!("hosts/{name}"),
                host(json!({})),
                &[&format!("host name \"{name}\" is invalid"), "path steps"],
            )
            .await;
        }
        refused(
            &state,
            "hosts/a\0b",
            host(json!({})),
            &["host name", "'\\0'"],
        )
        .await;
        refused(&state, "hosts/a b", host(json!({})), &["host name", "' '"]).await;
        write(&state, "hosts/web-1.example", host(json!({})))
            .await
            .expect("an ordinary name");
    }

    #[tokio::test]
    async fn accounts_named_dot_or_dot_dot_are_refused() {
        let state = crate::testing::services();
        write(&state, "hosts/web", host(json!({})))
            .await
            .expect("host");
        for name in [".", ".."] {
            refused(
                &state,
                &format!("hosts/web/accounts/{name}"),
                json!({"username": "app1", "password": "x", "verify_connection": false}),
                &[&format!("account name \"{name}\" is invalid")],
            )
            .await;
        }
        for username in ["App", "a\0b", "1app", ".."] {
            refused(
                &state,
                "hosts/web/accounts/app",
                json!({"username": username, "password": "x", "verify_connection": false}),
                &["field 'username': username", "^[a-z_][a-z0-9_.-]{0,31}$"],
            )
            .await;
        }
        write(
            &state,
            "hosts/web/accounts/app",
            json!({"username": "app1", "password": "x", "verify_connection": false}),
        )
        .await
        .expect("an ordinary account");
    }

    #[tokio::test]
    async fn a_local_hosts_agent_must_be_an_agent_id() {
        let state = crate::testing::services();
        for agent in ["Agent 1", "agent\0", "../agents/x"] {
            let error = write(
                &state,
                "hosts/local-1",
                json!({"address": "localhost", "connection": "local", "agent": agent}),
            )
            .await
            .expect_err("refused");
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{error}");
            assert!(
                error.message.starts_with("field 'agent' of host local-1"),
                "{error}"
            );
        }
    }

    #[tokio::test]
    async fn host_addresses_with_nul_or_64_kib_are_refused() {
        let state = crate::testing::services();
        let huge = "a".repeat(64 * 1024);
        for (address, problem) in [
            ("10.0.0.1\0evil", "it contains '\\0'"),
            (huge.as_str(), "65536 bytes long"),
            ("web_01", "it contains '_'"),
            ("10.0.0.1:22", "it contains ':'"),
            ("10.0.0.256", "looks like an IPv4 address"),
        ] {
            let error = write(&state, "hosts/web", host(json!({"address": address})))
                .await
                .expect_err("refused");
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{error}");
            assert!(
                error
                    .message
                    .starts_with("field 'address' of host web: address "),
                "{error}"
            );
            assert!(error.message.contains(problem), "{problem}: {error}");
            assert!(error.message.len() < 500, "the value is not echoed in full");
        }
        for (address, stored) in [
            ("web-01.example.com", "web-01.example.com"),
            (" 192.0.2.7\n", "192.0.2.7"),
            ("fd00::7", "fd00::7"),
            ("[fd00::7]", "fd00::7"),
        ] {
            write(&state, "hosts/web", host(json!({"address": address})))
                .await
                .unwrap_or_else(|error| panic!("{address}: {error}"));
            assert_eq!(read_host(&state, "web").await["address"], stored);
        }
        // An agent on the host itself reaches it as localhost.
        write(
            &state,
            "hosts/local-1",
            json!({"address": "localhost", "connection": "local", "agent": "agent-1"}),
        )
        .await
        .expect("localhost");
        assert_eq!(read_host(&state, "local-1").await["address"], "localhost");
    }

    #[tokio::test]
    async fn garbage_host_keys_are_refused_naming_field_and_host() {
        let state = crate::testing::services();
        for garbage in [
            // Passed the old prefix-and-length check.
            "ssh-ed25519 AAAAgarbagegarbagegarbage",
            "ssh-foo AAAAC3NzaC1lZDI1NTE5AAAAIB5m6X3b1x9Qm9l5jF0yVQ0P0n7p7q8mY0cZ2b7e6a5d",
            "ssh-ed25519 not-base64-but-long-enough",
            "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29t",
            // ssh-keyscan output with the host name left in.
            "web ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB5m6X3b1x9Qm9l5jF0yVQ0P0n7p7q8mY0cZ2b7e6a5d",
            "foo@example.com AAAAD2Zvb0BleGFtcGxlLmNvbQAAAAR0ZXN0",
            &format!("{HOST_KEY} a\0b"),
            "hello",
        ] {
            refused(
                &state,
                "hosts/web",
                host(json!({"ssh_host_key": garbage})),
                &["field 'ssh_host_key' of host web:", "ssh-keyscan"],
            )
            .await;
        }
    }

    #[tokio::test]
    async fn host_keys_are_stored_as_one_openssh_line() {
        let state = crate::testing::services();
        for (given, stored) in [
            (HOST_KEY.to_string(), HOST_KEY.to_string()),
            (
                format!("  {HOST_KEY} root@web\n"),
                format!("{HOST_KEY} root@web"),
            ),
            // Spaced out: the agent's parser would not read it; stored with single spaces.
            (
                HOST_KEY.replace("ssh-ed25519 ", "ssh-ed25519 \t "),
                HOST_KEY.to_string(),
            ),
        ] {
            write(&state, "hosts/web", host(json!({"ssh_host_key": given})))
                .await
                .unwrap_or_else(|error| panic!("{given:?}: {error}"));
            assert_eq!(read_host(&state, "web").await["ssh_host_key"], stored);
        }
        write(&state, "hosts/web", host(json!({"ssh_host_key": ""})))
            .await
            .expect("an empty key unpins");
        assert_eq!(read_host(&state, "web").await["ssh_host_key"], Value::Null);
    }
}
