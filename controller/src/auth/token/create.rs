//! `auth/token/create` and `create-orphan`: a new token, shown once in the `auth` block.
//!
//! Owns Vault's rules for what a caller may give its child: policies a subset of its own
//! (unless root or sudo on the path), `root` only from root, orphans and periods only for
//! root or sudo, a custom id only for root. Must not store anything but the token (tokens.rs).

use std::collections::BTreeMap;

use serde_json::Value;

use super::{has_sudo, render};
use crate::api::paths::{HandlerFuture, Request};
use crate::api::{ApiError, ApiResponse, AppState};
use crate::tokens::{self, TokenError, TokenRecord, TtlRequest};

pub fn create(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move { create_token(&state, &request, false) })
}

pub fn create_orphan(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move { create_token(&state, &request, true) })
}

/// `token-<name>` with anything but letters, digits and `-` replaced, as Vault names tokens.
fn display_name(requested: Option<String>) -> String {
    match requested.filter(|name| !name.trim().is_empty()) {
        None => "token".into(),
        Some(name) => {
            let cleaned: String = format!("token-{}", name.trim())
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            cleaned.trim_end_matches('-').chars().take(128).collect()
        }
    }
}

fn metadata(request: &Request) -> Result<BTreeMap<String, String>, ApiError> {
    let mut meta = BTreeMap::new();
    if let Some(map) = request.object("meta")? {
        for (key, value) in map {
            let Value::String(text) = value else {
                return Err(ApiError::bad_request(format!(
                    "field 'meta': the value of '{key}' must be a string"
                )));
            };
            meta.insert(key.clone(), text.clone());
        }
    }
    Ok(meta)
}

fn seconds(request: &Request, field: &str) -> Result<u64, ApiError> {
    Ok(request.duration(field)?.map(|d| d.as_secs()).unwrap_or(0))
}

fn create_token(
    state: &AppState,
    request: &Request,
    orphan_endpoint: bool,
) -> Result<ApiResponse, ApiError> {
    let caller = request
        .token
        .as_ref()
        .ok_or_else(ApiError::permission_denied)?;
    let caller_root = caller.acl.is_root();
    let sudo = caller_root || has_sudo(caller, &request.path);
    let mut warnings = Vec::new();

    if let Some(kind) = request.string("type")?
        && !kind.is_empty()
        && kind != "service"
    {
        return Err(ApiError::bad_request(format!(
            "field 'type': '{kind}' tokens are not supported; Rotor issues service tokens only"
        )));
    }
    if request
        .string("entity_alias")?
        .is_some_and(|alias| !alias.is_empty())
    {
        return Err(ApiError::bad_request(
            "field 'entity_alias': Rotor has no identity store; remove it",
        ));
    }
    let custom_id = request.string("id")?.filter(|id| !id.is_empty());
    if custom_id.is_some() && !caller_root {
        return Err(ApiError::bad_request(
            "field 'id': only a root token may choose a token's value",
        ));
    }
    if let Some(id) = &custom_id
        && (id.len() < 8 || id.chars().any(char::is_whitespace))
    {
        return Err(ApiError::bad_request(
            "field 'id': a token value needs at least 8 characters and no whitespace",
        ));
    }

    let no_default_policy = request.bool("no_default_policy")?.unwrap_or(false);
    let requested = match request.string_list("policies")? {
        Some(list) if !list.is_empty() => list,
        _ => caller.policies.clone(),
    };
    let policies = tokens::sanitize_policies(&requested, !no_default_policy);
    if policies.iter().any(|policy| policy == "root") && !caller_root {
        return Err(ApiError::bad_request(
            "field 'policies': only a root token may create a token with the root policy",
        ));
    }
    if !sudo {
        let outside: Vec<&String> = policies
            .iter()
            .filter(|policy| *policy != "default" && !caller.policies.contains(policy))
            .collect();
        if !outside.is_empty() {
            return Err(ApiError::bad_request(format!(
                "field 'policies': child policies must be a subset of the caller's (not held: {}); a root token or sudo on auth/token/{} lifts this",
                outside
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                request.path
            )));
        }
    }

    let no_parent = request.bool("no_parent")?.unwrap_or(false);
    if no_parent && !sudo && !orphan_endpoint {
        warnings.push(
            "no_parent was ignored: only root or sudo callers may create orphans here (use auth/token/create-orphan)".to_string(),
        );
    }
    let orphan = orphan_endpoint || (no_parent && sudo);

    let period_secs = seconds(request, "period")?;
    if period_secs > 0 && !sudo {
        return Err(ApiError::bad_request(
            "field 'period': only root or sudo callers may create periodic tokens",
        ));
    }
    let num_uses = request.int("num_uses")?.unwrap_or(0);
    let num_uses = u64::try_from(num_uses)
        .map_err(|_| ApiError::bad_request("field 'num_uses': must be zero (unlimited) or more"))?;
    let ttl_request = TtlRequest {
        ttl_secs: seconds(request, "ttl")?,
        explicit_max_ttl_secs: seconds(request, "explicit_max_ttl")?,
        period_secs,
        root_policy: policies == ["root"],
    };
    let ttl_secs = tokens::initial_ttl(ttl_request);
    let now = tokens::now_unix();
    let record = TokenRecord {
        accessor: tokens::generate_accessor(),
        policies,
        display_name: display_name(request.string("display_name")?),
        created_unix: now,
        parent_accessor: (!orphan).then(|| caller.accessor.clone()),
        meta: metadata(request)?,
        num_uses,
        creation_ttl_secs: ttl_secs,
        explicit_max_ttl_secs: ttl_request.explicit_max_ttl_secs,
        period_secs,
        expire_unix: (ttl_secs > 0).then(|| now.saturating_add(ttl_secs)),
        renewable: request.bool("renewable")?.unwrap_or(true),
        path: format!("{}{}", super::super::TOKEN_MOUNT, request.path),
        last_renewal_unix: None,
        bound_cidrs: Vec::new(),
    };
    let token = custom_id.unwrap_or_else(tokens::generate_token);
    tokens::insert(&state.store, &token, &record).map_err(|error| match error {
        TokenError::Invalid(message) => ApiError::bad_request(message),
        TokenError::Store(error) => ApiError::from(error),
    })?;
    tracing::info!(
        display_name = %record.display_name,
        policies = ?record.policies,
        ttl_secs,
        orphan,
        "token created"
    );
    let mut response = ApiResponse::empty();
    response.auth = Some(render::auth_block(&token, &record, now));
    response.warnings = warnings;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_follow_vault() {
        assert_eq!(display_name(None), "token");
        assert_eq!(display_name(Some(String::new())), "token");
        assert_eq!(display_name(Some("token".into())), "token-token");
        assert_eq!(display_name(Some("ci job/7".into())), "token-ci-job-7");
        assert_eq!(display_name(Some("x!".into())), "token-x");
    }
}
