//! userpass through its path table on an in-memory store: users with argon2id hashes, login
//! and its refusals, the limiter, and reads that never show a password.

use std::net::IpAddr;

use serde_json::{Value, json};

use super::paths;
use crate::api::paths::Operation;
use crate::api::{ApiError, ApiResponse, AppState};
use crate::store::Table;
use crate::testing::{call, call_from, services};
use crate::tokens;

const MOUNT: &str = "auth/userpass/";

fn ip(text: &str) -> Option<IpAddr> {
    Some(text.parse().expect("address"))
}

async fn login(
    state: &AppState,
    user: &str,
    password: &str,
    from: Option<IpAddr>,
) -> Result<ApiResponse, ApiError> {
    call_from(
        state,
        None,
        paths(),
        MOUNT,
        Operation::Write,
        &format!("login/{user}"),
        json!({"password": password}),
        from,
    )
    .await
}

#[tokio::test]
async fn a_user_logs_in_with_the_password_and_only_with_it() {
    let state = services();
    call(
        &state,
        paths(),
        MOUNT,
        Operation::Write,
        "users/Alice",
        json!({"password": "Tr0ub4dor&3", "policies": "readers", "token_ttl": "30m"}),
    )
    .await
    .expect("create");
    let rows = state
        .store
        .scan::<Value>(Table::AuthRecords, "userpass/")
        .expect("scan");
    let stored = serde_json::to_string(&rows).expect("json");
    assert!(
        !stored.contains("Tr0ub4dor&3"),
        "the password is stored in clear"
    );
    assert!(stored.contains("$argon2id$"), "{stored}");
    let read = call(
        &state,
        paths(),
        MOUNT,
        Operation::Read,
        "users/alice",
        json!({}),
    )
    .await
    .expect("read");
    let data = read.data.expect("data");
    assert_eq!(data["token_policies"], json!(["readers"]));
    assert!(
        !serde_json::to_string(&data)
            .expect("json")
            .contains("argon2")
    );

    let response = login(&state, "alice", "Tr0ub4dor&3", ip("10.0.0.5"))
        .await
        .expect("login");
    let auth = response.auth.expect("auth");
    assert_eq!(auth["policies"], json!(["default", "readers"]));
    assert_eq!(auth["lease_duration"], 1800);
    assert_eq!(auth["metadata"]["username"], "alice");
    let token = auth["client_token"].as_str().expect("token");
    let found = tokens::lookup(&state.store, token, tokens::now_unix())
        .expect("lookup")
        .expect("token");
    assert_eq!(found.record.display_name, "userpass-alice");
    assert_eq!(found.record.path, "auth/userpass/login/alice");

    for (user, password) in [("alice", "wrong"), ("alice", ""), ("bob", "Tr0ub4dor&3")] {
        let error = login(&state, user, password, ip("10.0.0.6"))
            .await
            .expect_err("refused");
        assert_eq!(error.status.as_u16(), 400, "{user}");
        assert!(
            error.message == "invalid username or password"
                || error.message.contains("missing required field 'password'"),
            "{user}: {}",
            error.message
        );
    }

    // A new password replaces the old one.
    call(
        &state,
        paths(),
        MOUNT,
        Operation::Write,
        "users/alice/password",
        json!({"password": "n3w-Secret"}),
    )
    .await
    .expect("password");
    assert!(
        login(&state, "alice", "Tr0ub4dor&3", ip("10.0.0.7"))
            .await
            .is_err()
    );
    login(&state, "alice", "n3w-Secret", ip("10.0.0.7"))
        .await
        .expect("new password");
    // Creating a user needs a password.
    let error = call(
        &state,
        paths(),
        MOUNT,
        Operation::Write,
        "users/carol",
        json!({"policies": "x"}),
    )
    .await
    .expect_err("no password");
    assert_eq!(error.message, "missing password");
}

#[tokio::test]
async fn guessing_is_slowed_to_429_for_the_guesser_only() {
    let state = services();
    call(
        &state,
        paths(),
        MOUNT,
        Operation::Write,
        "users/alice",
        json!({"password": "right-one"}),
    )
    .await
    .expect("create");
    for _ in 0..5 {
        assert_eq!(
            login(&state, "alice", "guess", ip("192.0.2.66"))
                .await
                .expect_err("refused")
                .status
                .as_u16(),
            400
        );
    }
    let locked = login(&state, "alice", "right-one", ip("192.0.2.66"))
        .await
        .expect_err("locked");
    assert_eq!(locked.status.as_u16(), 429);
    assert!(locked.message.contains("retry in"), "{}", locked.message);
    login(&state, "alice", "right-one", ip("10.0.0.5"))
        .await
        .expect("alice from her own address");
}
