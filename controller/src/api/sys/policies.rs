//! ACL policy paths: `sys/policies/acl[/<name>]` and the legacy `sys/policy[/<name>]` the
//! reference's recipes use (which answers `rules` where the new path answers `policy`).
//!
//! Owns the HTTP surface of policies; parsing and storage are `acl::`. Must not evaluate
//! requests against policies.

use crate::acl::store::PolicyStoreError;
use crate::api::paths::{Field, FieldKind, HandlerFuture, Operation, PathSpec, Request};
use crate::api::{ApiError, ApiResponse, AppState};
use crate::data_map;

const POLICY_FIELDS: &[Field] = &[
    Field::new(
        "policy",
        FieldKind::String,
        "the policy document (HCL or JSON)",
    ),
    // Read by the shared write handler; Vault's policies/acl ignores it, Rotor always took it.
    Field::new(
        "rules",
        FieldKind::String,
        "the policy document (older name of 'policy')",
    ),
];

const LEGACY_POLICY_FIELDS: &[Field] = &[
    Field::new(
        "policy",
        FieldKind::String,
        "the policy document (HCL or JSON)",
    ),
    Field::new(
        "rules",
        FieldKind::String,
        "the policy document (older name of 'policy')",
    ),
];

pub(super) fn specs() -> Vec<PathSpec> {
    vec![
        PathSpec::new(
            "policies/acl",
            "Lists ACL policies.",
            "The names of every ACL policy, root and default included.",
            &[],
            vec![(Operation::List, list as fn(_, _) -> _)],
        ),
        PathSpec::new(
            "policies/acl/{name}",
            "Reads, writes or deletes an ACL policy.",
            "A policy is HCL (or JSON) path rules with capabilities (create, read, update, \
             delete, list, sudo, deny), as Vault's. Names are folded to lowercase. A write is \
             parsed first: an invalid policy is a 400 saying why, and nothing changes. root \
             cannot be written or deleted, default cannot be deleted. Writing a new policy \
             needs create, changing one needs update.",
            POLICY_FIELDS,
            vec![
                (Operation::Read, read),
                (Operation::Write, write),
                (Operation::Delete, delete),
            ],
        )
        .existence(policy_exists),
        PathSpec::new(
            "policy",
            "Lists ACL policies (legacy path).",
            "The names of every ACL policy, in 'policies' and 'keys', as Vault's older path \
             answers.",
            &[],
            vec![(Operation::Read, list_legacy), (Operation::List, list)],
        ),
        PathSpec::new(
            "policy/{name}",
            "Reads, writes or deletes an ACL policy (legacy path).",
            "As policies/acl/<name>, but a read answers the document as 'rules' and a write \
             takes it as 'rules' or 'policy', as Vault's older path does.",
            LEGACY_POLICY_FIELDS,
            vec![
                (Operation::Read, read_legacy),
                (Operation::Write, write),
                (Operation::Delete, delete),
            ],
        )
        .existence(policy_exists),
    ]
}

fn refused(error: PolicyStoreError) -> ApiError {
    match error {
        PolicyStoreError::Store(error) => ApiError::from(error),
        other => ApiError::bad_request(other.to_string()),
    }
}

/// Whether the named policy exists: tells `create` from `update` for the ACL.
fn policy_exists(state: &AppState, request: &Request) -> Result<bool, ApiError> {
    let name = request.param("name");
    if name.eq_ignore_ascii_case("root") {
        return Ok(true);
    }
    Ok(state.policies.read(name).map_err(refused)?.is_some())
}

fn list(state: AppState, _request: Request) -> HandlerFuture {
    Box::pin(async move { Ok(ApiResponse::keys(state.policies.list().map_err(refused)?)) })
}

fn list_legacy(state: AppState, _request: Request) -> HandlerFuture {
    Box::pin(async move {
        let names = state.policies.list().map_err(refused)?;
        Ok(ApiResponse::data(data_map! {
            "policies" => names.clone(),
            "keys" => names,
        }))
    })
}

fn text_of(state: &AppState, name: &str) -> Result<String, ApiError> {
    if name.eq_ignore_ascii_case("root") {
        return Ok(String::new());
    }
    state
        .policies
        .read(name)
        .map_err(refused)?
        .map(|record| record.text)
        .ok_or_else(|| ApiError::not_found(format!("no policy named '{name}'")))
}

fn read(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let name = request.param("name").to_ascii_lowercase();
        let text = text_of(&state, &name)?;
        Ok(ApiResponse::data(
            data_map! { "name" => name, "policy" => text },
        ))
    })
}

fn read_legacy(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let name = request.param("name").to_ascii_lowercase();
        let text = text_of(&state, &name)?;
        Ok(ApiResponse::data(
            data_map! { "name" => name, "rules" => text },
        ))
    })
}

fn write(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        // Missing or empty, the store refuses it with Vault's message.
        let text = match request.string("policy")? {
            Some(text) => text,
            None => request.string("rules")?.unwrap_or_default(),
        };
        let name = state
            .policies
            .write(request.param("name"), &text)
            .map_err(refused)?;
        tracing::info!(policy = %name, "policy written");
        Ok(ApiResponse::empty())
    })
}

fn delete(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let name = request.param("name").to_string();
        if state.policies.delete(&name).map_err(refused)? {
            tracing::info!(policy = %name.to_ascii_lowercase(), "policy deleted");
        }
        Ok(ApiResponse::empty())
    })
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use serde_json::json;

    use crate::acl::store::EMPTY_POLICY;
    use crate::api::paths::Operation;

    const READ_OS: &str = "path \"os/*\" { capabilities = [\"read\"] }";

    #[tokio::test]
    async fn an_empty_policy_is_refused_as_vault_does() {
        let state = crate::testing::services();
        let write = |path: &'static str, body| {
            let state = state.clone();
            async move {
                crate::testing::call(
                    &state,
                    super::super::paths(),
                    "sys/",
                    Operation::Write,
                    path,
                    body,
                )
                .await
            }
        };
        for body in [json!({"policy": ""}), json!({"policy": " \n\t"}), json!({})] {
            for path in ["policies/acl/apps", "policy/apps"] {
                let error = write(path, body.clone()).await.expect_err("empty");
                assert_eq!(error.status, StatusCode::BAD_REQUEST, "{path} {body}");
                assert_eq!(error.message, EMPTY_POLICY, "{path} {body}");
            }
        }
        let error = write("policy/apps", json!({"rules": ""}))
            .await
            .expect_err("empty rules");
        assert_eq!(error.message, EMPTY_POLICY);
        assert!(state.policies.read("apps").expect("read").is_none());
        write("policies/acl/apps", json!({"policy": READ_OS}))
            .await
            .expect("a real policy");
        write("policy/apps", json!({"rules": READ_OS}))
            .await
            .expect("a real policy (legacy)");
    }

    #[tokio::test]
    async fn policies_named_dot_or_dot_dot_are_refused() {
        let state = crate::testing::services();
        for path in ["policies/acl/.", "policies/acl/.."] {
            let error = crate::testing::call(
                &state,
                super::super::paths(),
                "sys/",
                Operation::Write,
                path,
                json!({"policy": READ_OS}),
            )
            .await
            .expect_err("a path step");
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{path}");
            assert!(error.message.contains("path steps"), "{}", error.message);
        }
    }
}
