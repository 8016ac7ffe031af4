//! The `auth/token/` path table: create, lookup, renew and revoke, as Vault's token method
//! lays them out, and which of its paths are root-protected (need `sudo`).
//!
//! Owns the table only; each operation group has its own file. Must not check policies
//! (the API does it before a handler runs) beyond the sudo-dependent options of `create`.

mod create;
mod lookup;
pub mod render;
mod renew;
mod revoke;

use std::sync::LazyLock;

use crate::acl::Capabilities;
use crate::api::TokenContext;
use crate::api::paths::{Field, FieldKind, Operation, PathSpec};

const CREATE_FIELDS: &[Field] = &[
    Field::new(
        "id",
        FieldKind::String,
        "the token's value (root callers only; default random)",
    )
    .sensitive(),
    Field::new(
        "policies",
        FieldKind::StringList,
        "policies of the token (default: the caller's); a subset of the caller's unless root or sudo",
    ),
    Field::new(
        "meta",
        FieldKind::Map,
        "string key/value metadata, shown in lookups and audit logs (hashed)",
    ),
    Field::new(
        "no_parent",
        FieldKind::Bool,
        "root or sudo callers: create an orphan (no parent)",
    ),
    Field::new(
        "no_default_policy",
        FieldKind::Bool,
        "do not add the default policy",
    ),
    Field::new(
        "renewable",
        FieldKind::Bool,
        "whether the token may be renewed (default true)",
    ),
    Field::new(
        "ttl",
        FieldKind::Duration,
        "time to live (default 768h; none for root tokens)",
    ),
    Field::new(
        "explicit_max_ttl",
        FieldKind::Duration,
        "a hard limit on the token's life that renewals cannot pass",
    ),
    Field::new(
        "period",
        FieldKind::Duration,
        "root or sudo callers: a periodic token renews to this period without a maximum",
    ),
    Field::new(
        "display_name",
        FieldKind::String,
        "a name for logs: token-<name>",
    ),
    Field::new(
        "num_uses",
        FieldKind::Int,
        "how many requests the token may make (0: unlimited)",
    ),
    Field::new(
        "type",
        FieldKind::String,
        "service (the only type Rotor has)",
    ),
    Field::new(
        "entity_alias",
        FieldKind::String,
        "not supported (no identity store)",
    ),
];

const TOKEN_FIELD: &[Field] =
    &[Field::new("token", FieldKind::String, "the token to act on").sensitive()];

const ACCESSOR_FIELD: &[Field] = &[Field::new(
    "accessor",
    FieldKind::String,
    "the accessor of the token to act on",
)];

const RENEW_FIELDS: &[Field] = &[
    Field::new("token", FieldKind::String, "the token to renew").sensitive(),
    Field::new(
        "increment",
        FieldKind::Duration,
        "the new TTL asked for, from now (default: the token's own TTL)",
    ),
];

const RENEW_SELF_FIELDS: &[Field] = &[Field::new(
    "increment",
    FieldKind::Duration,
    "the new TTL asked for, from now (default: the token's own TTL)",
)];

const RENEW_ACCESSOR_FIELDS: &[Field] = &[
    Field::new(
        "accessor",
        FieldKind::String,
        "the accessor of the token to renew",
    ),
    Field::new(
        "increment",
        FieldKind::Duration,
        "the new TTL asked for, from now (default: the token's own TTL)",
    ),
];

static PATHS: LazyLock<Vec<PathSpec>> = LazyLock::new(|| {
    let spec = |pattern, synopsis, fields, operations| PathSpec {
        pattern,
        synopsis,
        fields,
        operations,
        unauthenticated: false,
    };
    vec![
        spec(
            "create",
            "Creates a token (a child of the caller unless no_parent).",
            CREATE_FIELDS,
            vec![(Operation::Write, create::create as fn(_, _) -> _)],
        ),
        spec(
            "create-orphan",
            "Creates a token without a parent.",
            CREATE_FIELDS,
            vec![(Operation::Write, create::create_orphan)],
        ),
        spec(
            "lookup",
            "Properties of a token.",
            TOKEN_FIELD,
            vec![
                (Operation::Read, lookup::lookup),
                (Operation::Write, lookup::lookup),
            ],
        ),
        spec(
            "lookup-self",
            "Properties of the caller's token.",
            &[],
            vec![
                (Operation::Read, lookup::lookup_self),
                (Operation::Write, lookup::lookup_self),
            ],
        ),
        spec(
            "lookup-accessor",
            "Properties of the token an accessor names (without its value).",
            ACCESSOR_FIELD,
            vec![(Operation::Write, lookup::lookup_accessor)],
        ),
        spec(
            "accessors",
            "Lists every token accessor (sudo).",
            &[],
            vec![(Operation::List, lookup::list_accessors)],
        ),
        spec(
            "renew",
            "Renews a token.",
            RENEW_FIELDS,
            vec![(Operation::Write, renew::renew)],
        ),
        spec(
            "renew-self",
            "Renews the caller's token.",
            RENEW_SELF_FIELDS,
            vec![(Operation::Write, renew::renew_self)],
        ),
        spec(
            "renew-accessor",
            "Renews the token an accessor names.",
            RENEW_ACCESSOR_FIELDS,
            vec![(Operation::Write, renew::renew_accessor)],
        ),
        spec(
            "revoke",
            "Revokes a token, its children and their leases.",
            TOKEN_FIELD,
            vec![(Operation::Write, revoke::revoke)],
        ),
        spec(
            "revoke-self",
            "Revokes the caller's token, its children and their leases.",
            &[],
            vec![(Operation::Write, revoke::revoke_self)],
        ),
        spec(
            "revoke-accessor",
            "Revokes the token an accessor names, its children and their leases.",
            ACCESSOR_FIELD,
            vec![(Operation::Write, revoke::revoke_accessor)],
        ),
        spec(
            "revoke-orphan",
            "Revokes a token and its leases; its children become orphans (sudo).",
            TOKEN_FIELD,
            vec![(Operation::Write, revoke::revoke_orphan)],
        ),
    ]
});

pub fn paths() -> &'static [PathSpec] {
    &PATHS
}

/// Paths of this backend that also need `sudo` (Vault's root-protected paths).
pub const ROOT_PATHS: &[&str] = &["revoke-orphan*", "accessors*"];

/// Whether the caller holds `sudo` on `auth/token/<path>`.
fn has_sudo(caller: &TokenContext, path: &str) -> bool {
    caller
        .acl
        .capabilities(&format!("{}{path}", super::TOKEN_MOUNT))
        .allows(Capabilities::SUDO)
}
