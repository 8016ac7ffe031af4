//! The `auth/token/` path table: create, lookup, renew and revoke, as Vault's token method
//! lays them out; its entries say which operations are root-protected (need `sudo`).
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
    vec![
        PathSpec::new(
            "create",
            "Creates a token (a child of the caller unless no_parent).",
            "The new token's policies are a subset of the caller's unless the caller is root or \
             has sudo here, and only such callers may make an orphan (no_parent) or a periodic \
             token; only root may choose its value (id). A child is revoked with its parent. \
             The token's value is answered once, in auth; Rotor keeps only its hash.",
            CREATE_FIELDS,
            vec![(Operation::Write, create::create as fn(_, _) -> _)],
        ),
        PathSpec::new(
            "create-orphan",
            "Creates a token without a parent.",
            "As create, but the token has no parent, so revoking the caller leaves it alive.",
            CREATE_FIELDS,
            vec![(Operation::Write, create::create_orphan)],
        ),
        PathSpec::new(
            "lookup",
            "Properties of a token.",
            "The token's accessor, policies, metadata, TTL, expiry, uses left and path; never \
             its value.",
            TOKEN_FIELD,
            vec![
                (Operation::Read, lookup::lookup),
                (Operation::Write, lookup::lookup),
            ],
        ),
        PathSpec::new(
            "lookup-self",
            "Properties of the caller's token.",
            "As lookup, for the token that makes the request.",
            &[],
            vec![
                (Operation::Read, lookup::lookup_self),
                (Operation::Write, lookup::lookup_self),
            ],
        ),
        PathSpec::new(
            "lookup-accessor",
            "Properties of the token an accessor names (without its value).",
            "As lookup, for the token the accessor names.",
            ACCESSOR_FIELD,
            vec![(Operation::Write, lookup::lookup_accessor)],
        ),
        PathSpec::new(
            "accessors",
            "Lists every token accessor (sudo).",
            "The accessor of every live token. Needs sudo, as in Vault.",
            &[],
            vec![(Operation::List, lookup::list_accessors)],
        )
        .sudo(&[Operation::List]),
        PathSpec::new(
            "renew",
            "Renews a token.",
            "Extends the token's TTL by increment from now (default its own TTL), never past \
             its explicit_max_ttl; a periodic token renews to its period.",
            RENEW_FIELDS,
            vec![(Operation::Write, renew::renew)],
        ),
        PathSpec::new(
            "renew-self",
            "Renews the caller's token.",
            "As renew, for the token that makes the request.",
            RENEW_SELF_FIELDS,
            vec![(Operation::Write, renew::renew_self)],
        ),
        PathSpec::new(
            "renew-accessor",
            "Renews the token an accessor names.",
            "As renew, for the token the accessor names.",
            RENEW_ACCESSOR_FIELDS,
            vec![(Operation::Write, renew::renew_accessor)],
        ),
        PathSpec::new(
            "revoke",
            "Revokes a token, its children and their leases.",
            "The token and its whole subtree are revoked, and every lease they own is made due \
             in the same transaction; the sweeper then runs the leases' revoke actions.",
            TOKEN_FIELD,
            vec![(Operation::Write, revoke::revoke)],
        ),
        PathSpec::new(
            "revoke-self",
            "Revokes the caller's token, its children and their leases.",
            "As revoke, for the token that makes the request.",
            &[],
            vec![(Operation::Write, revoke::revoke_self)],
        ),
        PathSpec::new(
            "revoke-accessor",
            "Revokes the token an accessor names, its children and their leases.",
            "As revoke, for the token the accessor names.",
            ACCESSOR_FIELD,
            vec![(Operation::Write, revoke::revoke_accessor)],
        ),
        PathSpec::new(
            "revoke-orphan",
            "Revokes a token and its leases; its children become orphans (sudo).",
            "Only the token itself is revoked (with its leases); its children live on without a \
             parent. Needs sudo, as in Vault.",
            TOKEN_FIELD,
            vec![(Operation::Write, revoke::revoke_orphan)],
        )
        .sudo(&[Operation::Write]),
    ]
});

pub fn paths() -> &'static [PathSpec] {
    &PATHS
}

/// Whether the caller holds `sudo` on `auth/token/<path>`.
fn has_sudo(caller: &TokenContext, path: &str) -> bool {
    caller
        .acl
        .capabilities(&format!("{}{path}", super::TOKEN_MOUNT))
        .allows(Capabilities::SUDO)
}
