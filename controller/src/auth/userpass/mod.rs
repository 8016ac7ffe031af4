//! The userpass auth method (mount type `userpass`): its path table, as Vault's
//! `builtin/credential/userpass` lays it out and hvac's `auth.userpass` calls it.
//!
//! Users live in `auth_records` under the mount's path inside `auth/`: `<mount>user/<name>`.
//! Owns the table only; users, password hashing and login each have their own file. Must not
//! check policies (the API does it before a handler runs).

mod login;
pub mod password;
pub mod users;

use std::sync::LazyLock;

use super::login::TOKEN_FIELDS;
use crate::api::paths::{Field, FieldKind, Operation, PathSpec, Request};

/// The mount's prefix in `auth_records`: its path inside `auth/` (`userpass/`).
pub fn store_prefix(request: &Request) -> String {
    request
        .mount
        .strip_prefix("auth/")
        .unwrap_or(&request.mount)
        .to_string()
}

/// `name` empty: the prefix of every user of the mount.
pub fn user_key(prefix: &str, name: &str) -> String {
    format!("{prefix}user/{name}")
}

const PASSWORD: Field = Field::new(
    "password",
    FieldKind::String,
    "the user's password (stored only as an argon2id hash)",
)
.sensitive();

fn user_fields() -> &'static [Field] {
    let mut fields = vec![
        PASSWORD,
        Field::new(
            "token_type",
            FieldKind::String,
            "accepted for Vault compatibility; Rotor issues service tokens",
        ),
    ];
    fields.extend(TOKEN_FIELDS);
    Box::leak(fields.into_boxed_slice())
}

fn policy_fields() -> &'static [Field] {
    let fields: Vec<Field> = TOKEN_FIELDS
        .iter()
        .filter(|field| matches!(field.name, "token_policies" | "policies"))
        .copied()
        .collect();
    Box::leak(fields.into_boxed_slice())
}

const LOGIN_FIELDS: &[Field] = &[
    Field::new("password", FieldKind::String, "the user's password")
        .required()
        .sensitive(),
];

const PASSWORD_FIELDS: &[Field] = &[PASSWORD.required()];

static PATHS: LazyLock<Vec<PathSpec>> = LazyLock::new(|| {
    vec![
        PathSpec::new(
            "login/{username}",
            "Logs in with a user name and password.",
            "Answers a token with the user's policies and TTLs in auth when the password matches \
             the stored argon2id hash. A wrong password and an unknown user get the same answer, \
             after the same work; repeated failures are slowed down (429 saying when to retry). \
             Served without a token.",
            LOGIN_FIELDS,
            vec![(Operation::Write, login::login as fn(_, _) -> _)],
        )
        .unauthenticated(),
        PathSpec::new(
            "users",
            "Lists the users.",
            "The name of every user on this mount.",
            &[],
            vec![(Operation::List, users::list)],
        ),
        PathSpec::new(
            "users/{username}",
            "Creates, reads, updates or deletes a user.",
            "A user has a password (needed at creation; stored only as an argon2id hash and never \
             answered) and the token settings a login earns (token_policies, token_ttl, \
             token_max_ttl, token_num_uses, token_bound_cidrs). An update keeps what it does not \
             give.",
            user_fields(),
            vec![
                (Operation::Read, users::read),
                (Operation::Write, users::write_user),
                (Operation::Delete, users::delete),
            ],
        )
        .existence(users::user_exists),
        PathSpec::new(
            "users/{username}/password",
            "Changes a user's password.",
            "Replaces the stored hash; tokens the user already holds live on.",
            PASSWORD_FIELDS,
            vec![(Operation::Write, users::write_password)],
        ),
        PathSpec::new(
            "users/{username}/policies",
            "Changes a user's token policies.",
            "Replaces the policies of the tokens the user's next logins earn.",
            policy_fields(),
            vec![(Operation::Write, users::write_policies)],
        ),
    ]
});

pub fn paths() -> &'static [PathSpec] {
    &PATHS
}

#[cfg(test)]
mod tests;
