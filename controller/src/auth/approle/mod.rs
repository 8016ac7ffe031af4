//! The AppRole auth method (mount type `approle`): its path table, as Vault's
//! `builtin/credential/approle` lays it out and hvac's `auth.approle` calls it, and the layout
//! of its records in the store.
//!
//! Records live in `auth_records` under the mount's path inside `auth/` (`approle/`):
//! `role/<name>` (the role), `role_id/<role id>` (→ role name), `secret_id/<role>/<sha256>`
//! (a secret ID, never its value), `secret_id_accessor/<role>/<accessor>` (→ the hash).
//! Owns the table only; roles, secret IDs and login each have their own file. Must not
//! check policies (the API does it before a handler runs).

mod login;
pub mod role;
pub mod secret_id;

use std::sync::LazyLock;

use super::login::TOKEN_FIELDS;
use crate::api::paths::{Field, FieldKind, Operation, PathSpec, Request};

/// The mount's prefix in `auth_records`: its path inside `auth/` (`approle/`).
pub fn store_prefix(request: &Request) -> String {
    request
        .mount
        .strip_prefix("auth/")
        .unwrap_or(&request.mount)
        .to_string()
}

pub fn role_key(prefix: &str, name: &str) -> String {
    format!("{prefix}role/{name}")
}

pub fn role_id_key(prefix: &str, role_id: &str) -> String {
    format!("{prefix}role_id/{role_id}")
}

pub fn secret_id_prefix(prefix: &str, role: &str) -> String {
    format!("{prefix}secret_id/{role}/")
}

pub fn secret_id_key(prefix: &str, role: &str, hash: &str) -> String {
    format!("{prefix}secret_id/{role}/{hash}")
}

/// `accessor` empty: the prefix of every accessor of the role.
pub fn accessor_index_key(prefix: &str, role: &str, accessor: &str) -> String {
    format!("{prefix}secret_id_accessor/{role}/{accessor}")
}

/// `own` followed by the token fields every role carries; built once per table.
fn with_token_fields(own: &[Field]) -> &'static [Field] {
    let mut fields = own.to_vec();
    fields.extend(TOKEN_FIELDS);
    Box::leak(fields.into_boxed_slice())
}

const ROLE_FIELDS: &[Field] = &[
    Field::new(
        "bind_secret_id",
        FieldKind::Bool,
        "whether a login must present a secret ID (default true)",
    ),
    Field::new(
        "secret_id_bound_cidrs",
        FieldKind::StringList,
        "CIDR blocks that may log in with this role's secret IDs (empty: anywhere)",
    ),
    Field::new(
        "secret_id_num_uses",
        FieldKind::Int,
        "logins a new secret ID allows (0: unlimited)",
    ),
    Field::new(
        "secret_id_ttl",
        FieldKind::Duration,
        "how long a new secret ID works (0: until destroyed)",
    ),
    Field::new(
        "role_id",
        FieldKind::String,
        "a role ID of your choosing (default: a random UUID)",
    ),
    Field::new(
        "local_secret_ids",
        FieldKind::Bool,
        "accepted for Vault compatibility (Rotor has no replication)",
    ),
    Field::new(
        "token_type",
        FieldKind::String,
        "accepted for Vault compatibility; Rotor issues service tokens",
    ),
];

const ROLE_ID_FIELDS: &[Field] = &[Field::new(
    "role_id",
    FieldKind::String,
    "the role's new role ID (unique on the mount)",
)];

const SECRET_ID_FIELDS: &[Field] = &[
    Field::new(
        "metadata",
        FieldKind::String,
        "a JSON object of strings, copied into the metadata of tokens this secret ID logs in to",
    ),
    Field::new(
        "cidr_list",
        FieldKind::StringList,
        "CIDR blocks that may log in with this secret ID (inside the role's secret_id_bound_cidrs)",
    ),
    Field::new(
        "token_bound_cidrs",
        FieldKind::StringList,
        "CIDR blocks the tokens this secret ID logs in to may be used from",
    ),
    Field::new(
        "ttl",
        FieldKind::Duration,
        "this secret ID's life (at most the role's secret_id_ttl)",
    ),
    Field::new(
        "num_uses",
        FieldKind::Int,
        "logins this secret ID allows (at most the role's secret_id_num_uses)",
    ),
];

const SECRET_ID_VALUE: &[Field] =
    &[Field::new("secret_id", FieldKind::String, "the secret ID").sensitive()];

const SECRET_ID_ACCESSOR: &[Field] = &[Field::new(
    "secret_id_accessor",
    FieldKind::String,
    "the accessor of the secret ID",
)];

const LOGIN_FIELDS: &[Field] = &[
    Field::new("role_id", FieldKind::String, "the role's role ID").required(),
    Field::new(
        "secret_id",
        FieldKind::String,
        "a secret ID of the role (needed unless the role has bind_secret_id=false)",
    )
    .sensitive(),
];

static PATHS: LazyLock<Vec<PathSpec>> = LazyLock::new(|| {
    vec![
        PathSpec::new(
            "login",
            "Logs in with a role ID and a secret ID.",
            "Answers a token with the role's policies and TTLs in auth, when the role ID names a \
             role and the secret ID is one of its own, not expired nor used up, presented from an \
             address inside its CIDRs; one use of the secret ID is spent. Any other pair is \
             refused with the same message, and repeated failures from one address are slowed \
             down (429 saying when to retry). Served without a token.",
            LOGIN_FIELDS,
            vec![(Operation::Write, login::login as fn(_, _) -> _)],
        )
        .unauthenticated(),
        PathSpec::new(
            "role",
            "Lists the roles.",
            "The name of every AppRole role on this mount.",
            &[],
            vec![(Operation::List, role::list)],
        ),
        PathSpec::new(
            "role/{name}",
            "Creates, reads, updates or deletes a role.",
            "A role says what a login earns (token_policies, token_ttl, token_max_ttl, \
             token_num_uses, token_bound_cidrs) and what its secret IDs are like (bind_secret_id, \
             secret_id_ttl, secret_id_num_uses, secret_id_bound_cidrs). A new role gets a random \
             role ID. Deleting a role deletes its secret IDs; tokens it issued live on until \
             revoked or expired.",
            with_token_fields(ROLE_FIELDS),
            vec![
                (Operation::Read, role::read),
                (Operation::Write, role::write_role),
                (Operation::Delete, role::delete),
            ],
        )
        .existence(role::role_exists),
        PathSpec::new(
            "role/{name}/role-id",
            "Reads or sets a role's role ID.",
            "The role ID is the role's public half of a login, like a user name; a write sets one \
             of your choosing, unique on the mount.",
            ROLE_ID_FIELDS,
            vec![
                (Operation::Read, role::read_role_id),
                (Operation::Write, role::write_role_id),
            ],
        ),
        PathSpec::new(
            "role/{name}/secret-id",
            "Generates a secret ID for a role, or lists its secret IDs' accessors.",
            "A write answers a new secret ID (shown once: Rotor keeps only its hash) with its \
             accessor, TTL and uses; wrap it (X-Vault-Wrap-TTL) to hand it over safely. A list \
             answers the accessors of the role's secret IDs.",
            SECRET_ID_FIELDS,
            vec![
                (Operation::Write, secret_id::generate),
                (Operation::List, secret_id::list_accessors),
            ],
        ),
        PathSpec::new(
            "role/{name}/secret-id/lookup",
            "Properties of a secret ID.",
            "Its accessor, creation and expiry times, uses left, CIDRs and metadata; never its \
             value. An unknown or expired secret ID answers no data.",
            SECRET_ID_VALUE,
            vec![(Operation::Write, secret_id::lookup)],
        ),
        PathSpec::new(
            "role/{name}/secret-id/destroy",
            "Destroys a secret ID.",
            "The secret ID stops working at once. Tokens it logged in to live on.",
            SECRET_ID_VALUE,
            vec![
                (Operation::Write, secret_id::destroy),
                (Operation::Delete, secret_id::destroy),
            ],
        ),
        PathSpec::new(
            "role/{name}/secret-id-accessor/lookup",
            "Properties of the secret ID an accessor names.",
            "As secret-id/lookup, for the secret ID the accessor names.",
            SECRET_ID_ACCESSOR,
            vec![(Operation::Write, secret_id::lookup_by_accessor)],
        ),
        PathSpec::new(
            "role/{name}/secret-id-accessor/destroy",
            "Destroys the secret ID an accessor names.",
            "As secret-id/destroy, for the secret ID the accessor names.",
            SECRET_ID_ACCESSOR,
            vec![
                (Operation::Write, secret_id::destroy_by_accessor),
                (Operation::Delete, secret_id::destroy_by_accessor),
            ],
        ),
    ]
});

pub fn paths() -> &'static [PathSpec] {
    &PATHS
}

#[cfg(test)]
mod tests;
