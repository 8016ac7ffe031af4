//! Password policy paths, as Vault lays them out: `sys/policies/password` (list),
//! `sys/policies/password/<name>` (read, write, delete) and `…/<name>/generate`.
//!
//! Owns the HTTP surface of password policies: a write is validated before it is stored (an
//! impossible policy is a 400 saying why), a delete is refused while an OS engine config,
//! host or account names the policy. Parsing, storage and generation are `password_policy::`.
//! Must not log a generated password.

use crate::api::paths::{Field, FieldKind, HandlerFuture, Operation, PathSpec, Request};
use crate::api::{ApiError, ApiResponse, AppState};
use crate::data_map;
use crate::engines::os::password::policy_users;
use crate::password_policy::store::{self as policies, PasswordPolicyStoreError};
use crate::password_policy::{self};

const POLICY_FIELDS: &[Field] = &[Field::new(
    "policy",
    FieldKind::String,
    "the password policy, HCL or base64 of it (length = N and rule \"charset\" { charset = \"...\" min-chars = N } blocks)",
)
.required()];

pub(super) fn specs() -> Vec<PathSpec> {
    vec![
        PathSpec::new(
            "policies/password",
            "Lists password policies.",
            "The names of every password policy.",
            &[],
            vec![(Operation::List, list as fn(_, _) -> _)],
        ),
        PathSpec::new(
            "policies/password/{name}",
            "Reads, writes or deletes a password policy.",
            "A password policy says how new passwords are made: a length and charset rules, \
             each with a minimum count, as Vault's. A write is checked first: a policy no \
             password can satisfy is a 400 saying why. A policy still named by an OS engine's \
             config, host or account cannot be deleted. Writing a new policy needs create, \
             changing one needs update.",
            POLICY_FIELDS,
            vec![
                (Operation::Read, read),
                (Operation::Write, write),
                (Operation::Delete, delete),
            ],
        )
        .existence(exists),
        PathSpec::new(
            "policies/password/{name}/generate",
            "Generates a password from a password policy.",
            "A fresh password made by the policy, from the operating system's random source; \
             nothing is stored or logged.",
            &[],
            vec![(Operation::Read, generate)],
        ),
    ]
}

fn refused(error: PasswordPolicyStoreError) -> ApiError {
    match error {
        PasswordPolicyStoreError::Store(error) => ApiError::from(error),
        other => ApiError::bad_request(other.to_string()),
    }
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("no password policy named '{name}'"))
}

/// Whether the named password policy exists: tells `create` from `update` for the ACL.
fn exists(state: &AppState, request: &Request) -> Result<bool, ApiError> {
    Ok(policies::read(&state.store, request.param("name"))?.is_some())
}

fn list(state: AppState, _request: Request) -> HandlerFuture {
    Box::pin(async move { Ok(ApiResponse::keys(policies::list(&state.store)?)) })
}

fn read(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let name = request.param("name");
        let record = policies::read(&state.store, name)?.ok_or_else(|| not_found(name))?;
        Ok(ApiResponse::data(data_map! { "policy" => record.text }))
    })
}

fn write(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let name = request.param("name");
        let text = decoded_policy(request.required_string("policy")?);
        policies::write(&state.store, name, &text).map_err(refused)?;
        tracing::info!(password_policy = %name, "password policy written");
        Ok(ApiResponse::empty())
    })
}

/// Vault takes the document as written or base64-encoded (to spare clients the escaping);
/// a policy always holds quotes (`rule "charset"`), which base64 never does, so the two
/// cannot be confused.
fn decoded_policy(text: String) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or(text)
}

fn delete(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let name = request.param("name");
        let users = policy_users(&state.store, name)?;
        if !users.is_empty() {
            let shown: Vec<&str> = users.iter().take(5).map(String::as_str).collect();
            let more = users.len().saturating_sub(shown.len());
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            return Err(ApiError::bad_request(format!(
                "password policy '{name}' is in use by {}{more}; point them at another policy (password_policy=...) first",
                shown.join(", ")
            )));
        }
        if policies::delete(&state.store, name)? {
            tracing::info!(password_policy = %name, "password policy deleted");
        }
        Ok(ApiResponse::empty())
    })
}

fn generate(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let name = request.param("name");
        let policy = policies::load(&state.store, name)
            .map_err(refused)?
            .ok_or_else(|| not_found(name))?;
        let password = password_policy::generate(&policy)
            .map_err(|error| ApiError::internal(error.to_string()))?;
        Ok(ApiResponse::data(
            data_map! { "password" => password.expose() },
        ))
    })
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::decoded_policy;

    #[test]
    fn base64_documents_are_decoded_and_hcl_is_kept() {
        let hcl = "length = 8\nrule \"charset\" {\n  charset = \"ab\"\n}\n";
        let encoded = base64::engine::general_purpose::STANDARD.encode(hcl);
        assert_eq!(decoded_policy(encoded), hcl);
        assert_eq!(decoded_policy(hcl.to_string()), hcl);
    }
}
