//! Engine tests through the router on an in-memory store, with no agent: validation (a 400
//! naming the field), the password never answered, and what a creation that could not run
//! leaves behind (nothing), and recovery of a lease left mid-creation.

use serde_json::json;

use super::creds::{self, LeaseData, SECRET_KIND};
use super::paths::paths;
use crate::api::paths::Operation;
use crate::api::{ApiError, ApiResponse, AppState};
use crate::leases::NewLease;
use crate::testing::{call, services};

const MOUNT: &str = "database/";

async fn write(
    state: &AppState,
    path: &str,
    body: serde_json::Value,
) -> Result<ApiResponse, ApiError> {
    call(state, paths(), MOUNT, Operation::Write, path, body).await
}

async fn read(state: &AppState, path: &str) -> Result<ApiResponse, ApiError> {
    call(state, paths(), MOUNT, Operation::Read, path, json!({})).await
}

async fn configured() -> AppState {
    let state = services();
    write(
        &state,
        "config/pg",
        json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": "postgresql://{{username}}:{{password}}@db.site-a:5432/app?sslmode=disable",
            "username": "rotor",
            "password": "root-Secret-1",
            "allowed_roles": "readonly,ro2",
            "verify_connection": false,
            "site": "a",
        }),
    )
    .await
    .expect("config");
    state
}

fn bad_request(result: Result<ApiResponse, ApiError>, expected: &str) {
    let error = result.expect_err(expected);
    assert_eq!(error.status.as_u16(), 400, "{error}");
    assert!(
        error.message.contains(expected),
        "expected '{expected}' in: {error}"
    );
}

#[tokio::test]
async fn a_connection_read_never_answers_the_password() {
    let state = configured().await;
    let answer = read(&state, "config/pg").await.expect("read");
    let text = serde_json::to_string(&answer.data).expect("json");
    assert!(!text.contains("root-Secret-1"), "{text}");
    let data = answer.data.expect("data");
    assert_eq!(data["connection_details"]["username"], "rotor");
    assert_eq!(data["allowed_roles"], json!(["readonly", "ro2"]));
    assert_eq!(data["site"], "a");
    // A literal password in the URL is taken out and sealed too.
    write(
        &state,
        "config/literal",
        json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": "postgresql://root:Literal-pw-9@db:5432/app",
            "verify_connection": false,
        }),
    )
    .await
    .expect("literal");
    let answer = read(&state, "config/literal").await.expect("read");
    let text = serde_json::to_string(&answer.data).expect("json");
    assert!(!text.contains("Literal-pw-9"), "{text}");
    assert!(text.contains("root:{{password}}@db"), "{text}");
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_field() {
    let state = configured().await;
    let create = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}'";
    bad_request(
        write(
            &state,
            "roles/readonly",
            json!({"db_name": "nope", "creation_statements": create}),
        )
        .await,
        "field 'db_name'",
    );
    bad_request(
        write(
            &state,
            "roles/other",
            json!({"db_name": "pg", "creation_statements": create}),
        )
        .await,
        "'allowed_roles'",
    );
    bad_request(
        write(
            &state,
            "roles/readonly",
            json!({"db_name": "pg", "creation_statements": "CREATE ROLE \"{{name}}\" WITH LOGIN"}),
        )
        .await,
        "field 'creation_statements': {{password}} is missing",
    );
    bad_request(
        write(
            &state,
            "roles/readonly",
            json!({"db_name": "pg", "creation_statements": create, "default_ttl": "2h", "max_ttl": "1h"}),
        )
        .await,
        "field 'default_ttl'",
    );
    bad_request(
        write(
            &state,
            "config/x",
            json!({"plugin_name": "mysql-database-plugin", "connection_url": "postgresql://h/db"}),
        )
        .await,
        "field 'plugin_name'",
    );
    bad_request(
        write(
            &state,
            "config/x",
            json!({"plugin_name": "postgresql-database-plugin", "connection_url": "postgresql://h:0/db", "username": "u"}),
        )
        .await,
        "field 'connection_url'",
    );
    // A statement with commas stays one statement (never split at commas).
    write(
        &state,
        "roles/readonly",
        json!({
            "db_name": "pg",
            "creation_statements": format!("{create}; GRANT SELECT ON a, b TO \"{{{{name}}}}\";"),
            "default_ttl": "1h",
            "max_ttl": "24h",
        }),
    )
    .await
    .expect("role");
    let role = read(&state, "roles/readonly")
        .await
        .expect("read")
        .data
        .expect("data");
    assert_eq!(
        role["creation_statements"].as_array().map(Vec::len),
        Some(1),
        "{role:?}"
    );
    assert_eq!(role["default_ttl"], 3600);
}

#[tokio::test]
async fn creds_that_could_not_be_created_leave_no_lease() {
    let state = configured().await;
    write(
        &state,
        "roles/readonly",
        json!({
            "db_name": "pg",
            "creation_statements": "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}';",
        }),
    )
    .await
    .expect("role");
    let error = read(&state, "creds/readonly").await.expect_err("no agent");
    assert_eq!(error.status.as_u16(), 500, "{error}");
    assert!(error.message.contains("site 'a'"), "{error}");
    assert!(error.message.contains("the lease was dropped"), "{error}");
    assert!(
        state
            .leases
            .of_kind(SECRET_KIND)
            .expect("leases")
            .is_empty()
    );
    bad_request(
        read(&state, "creds/missing").await,
        "role 'missing' does not exist",
    );
}

#[tokio::test]
async fn a_lease_left_creating_is_revoked_at_recovery() {
    let state = services();
    let data = LeaseData {
        mount: MOUNT.into(),
        db_name: "pg".into(),
        username: "v-root-ro-abc".into(),
        state: creds::CREATING.into(),
        revocation_statements: vec![],
        renew_statements: vec![],
        terminate_sessions: true,
    };
    let now = crate::tokens::now_unix();
    let creating = state
        .leases
        .register(
            NewLease {
                path_prefix: "database/creds/ro".into(),
                secret_kind: SECRET_KIND.into(),
                ttl: std::time::Duration::from_secs(3600),
                max_ttl: std::time::Duration::from_secs(3600),
                renewable: true,
                revoke_data: serde_json::to_value(&data).expect("json"),
                owner_accessor: None,
            },
            now,
        )
        .expect("lease");
    let issued = state
        .leases
        .register(
            NewLease {
                path_prefix: "database/creds/ro".into(),
                secret_kind: SECRET_KIND.into(),
                ttl: std::time::Duration::from_secs(3600),
                max_ttl: std::time::Duration::from_secs(3600),
                renewable: true,
                revoke_data: serde_json::to_value(LeaseData {
                    state: creds::ISSUED.into(),
                    ..data
                })
                .expect("json"),
                owner_accessor: None,
            },
            now,
        )
        .expect("lease");
    assert_eq!(creds::recover_creating(&state.leases), 1);
    let recovered = state
        .leases
        .lookup(&creating.lease_id)
        .expect("kept until revoked");
    assert!(recovered.expire_unix <= crate::tokens::now_unix());
    let untouched = state.leases.lookup(&issued.lease_id).expect("issued");
    assert_eq!(untouched.expire_unix, issued.expire_unix);
}

#[test]
fn expiration_is_what_valid_until_reads() {
    assert_eq!(
        creds::expiration_text(1_515_625_519),
        "2018-01-10 23:05:19+0000"
    );
}
