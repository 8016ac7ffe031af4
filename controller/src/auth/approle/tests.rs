//! AppRole through its path table on an in-memory store: roles and role IDs, secret IDs
//! (stored only as hashes, uses counted down, expiry, CIDRs), login and its refusals, the
//! limiter, and a login token's leases going with it.

use std::net::IpAddr;

use serde_json::{Value, json};

use super::paths;
use crate::api::paths::Operation;
use crate::api::{ApiError, ApiResponse, AppState};
use crate::store::Table;
use crate::testing::{call, call_from, services};
use crate::tokens;

const MOUNT: &str = "auth/approle/";

fn ip(text: &str) -> Option<IpAddr> {
    Some(text.parse().expect("address"))
}

async fn write(state: &AppState, path: &str, body: Value) -> ApiResponse {
    call(state, paths(), MOUNT, Operation::Write, path, body)
        .await
        .unwrap_or_else(|error| panic!("write {path}: {error}"))
}

async fn read(state: &AppState, path: &str) -> Value {
    let response = call(state, paths(), MOUNT, Operation::Read, path, json!({}))
        .await
        .unwrap_or_else(|error| panic!("read {path}: {error}"));
    Value::Object(response.data.expect("data"))
}

async fn login(
    state: &AppState,
    role_id: &str,
    secret_id: &str,
    from: Option<IpAddr>,
) -> Result<ApiResponse, ApiError> {
    call_from(
        state,
        None,
        paths(),
        MOUNT,
        Operation::Write,
        "login",
        json!({"role_id": role_id, "secret_id": secret_id}),
        from,
    )
    .await
}

/// A role `web` and one secret ID of it: (role ID, secret ID, accessor).
async fn role_and_secret(state: &AppState, role: Value, secret: Value) -> (String, String, String) {
    write(state, "role/web", role).await;
    let role_id = read(state, "role/web/role-id").await["role_id"]
        .as_str()
        .expect("role_id")
        .to_string();
    let generated = write(state, "role/web/secret-id", secret).await;
    let data = generated.data.expect("data");
    (
        role_id,
        data["secret_id"].as_str().expect("secret_id").to_string(),
        data["secret_id_accessor"]
            .as_str()
            .expect("accessor")
            .to_string(),
    )
}

fn auth_of(response: &ApiResponse) -> &Value {
    response.auth.as_ref().expect("auth block")
}

#[tokio::test]
async fn a_login_earns_a_token_with_the_roles_policies_and_ttls() {
    let state = services();
    let (role_id, secret_id, accessor) = role_and_secret(
        &state,
        json!({"token_policies": "apps,Ops", "token_ttl": "1h", "token_max_ttl": "4h", "token_num_uses": 3, "secret_id_ttl": "10m"}),
        json!({"metadata": "{\"host\": \"web-01\"}"}),
    )
    .await;
    let role = read(&state, "role/web").await;
    assert_eq!(role["token_policies"], json!(["apps", "ops"]));
    assert_eq!(role["token_ttl"], 3600);
    assert_eq!(role["bind_secret_id"], true);

    let response = login(&state, &role_id, &secret_id, ip("10.0.0.5"))
        .await
        .expect("login");
    let auth = auth_of(&response);
    assert_eq!(auth["policies"], json!(["apps", "default", "ops"]));
    assert_eq!(auth["lease_duration"], 3600);
    assert_eq!(auth["num_uses"], 3);
    assert_eq!(auth["metadata"]["role_name"], "web");
    assert_eq!(auth["metadata"]["host"], "web-01");
    let token = auth["client_token"].as_str().expect("token");
    let found = tokens::lookup(&state.store, token, tokens::now_unix())
        .expect("lookup")
        .expect("a live token");
    assert_eq!(found.record.path, "auth/approle/login");
    assert_eq!(found.record.explicit_max_ttl_secs, 4 * 3600);
    assert!(found.record.orphan());

    // The secret ID is kept only as its hash, and shows up by accessor.
    let rows = state
        .store
        .scan::<Value>(Table::AuthRecords, "")
        .expect("scan");
    let everything = serde_json::to_string(&rows).expect("json");
    assert!(
        !everything.contains(&secret_id),
        "a secret ID is stored in clear"
    );
    assert!(everything.contains(&tokens::token_key(&secret_id)));
    let listed = call(
        &state,
        paths(),
        MOUNT,
        Operation::List,
        "role/web/secret-id",
        json!({}),
    )
    .await
    .expect("list");
    assert_eq!(
        listed.data.expect("keys")["keys"],
        json!([accessor.clone()])
    );
    let looked_up = write(
        &state,
        "role/web/secret-id-accessor/lookup",
        json!({"secret_id_accessor": accessor}),
    )
    .await;
    let looked_up = looked_up.data.expect("data");
    assert_eq!(looked_up["metadata"]["host"], "web-01");
    assert!(looked_up["secret_id_ttl"].as_u64().expect("ttl") <= 600);
    assert!(looked_up.get("secret_id").is_none());
}

#[tokio::test]
async fn wrong_unknown_used_up_and_expired_secret_ids_are_refused_alike() {
    let state = services();
    let (role_id, secret_id, accessor) = role_and_secret(
        &state,
        json!({"token_policies": ["apps"]}),
        json!({"num_uses": 2}),
    )
    .await;
    let refused = |result: Result<ApiResponse, ApiError>| {
        let error = result.expect_err("refused");
        assert_eq!(error.status.as_u16(), 400);
        assert_eq!(error.message, "invalid role or secret ID");
    };
    refused(login(&state, &role_id, "not-the-secret", ip("10.0.0.1")).await);
    refused(login(&state, "no-such-role-id", &secret_id, ip("10.0.0.1")).await);
    // Two uses, then it is gone (with its accessor).
    login(&state, &role_id, &secret_id, ip("10.0.0.1"))
        .await
        .expect("first use");
    let lookup = write(
        &state,
        "role/web/secret-id/lookup",
        json!({"secret_id": secret_id}),
    )
    .await;
    assert_eq!(lookup.data.expect("data")["secret_id_num_uses"], 1);
    login(&state, &role_id, &secret_id, ip("10.0.0.1"))
        .await
        .expect("second use");
    refused(login(&state, &role_id, &secret_id, ip("10.0.0.1")).await);
    let listed = call(
        &state,
        paths(),
        MOUNT,
        Operation::List,
        "role/web/secret-id",
        json!({}),
    )
    .await
    .expect("list");
    assert_eq!(
        listed.data.expect("keys")["keys"],
        json!([]),
        "{accessor} left behind"
    );

    // An expired secret ID is refused and deleted.
    let generated = write(&state, "role/web/secret-id", json!({"ttl": "1h"})).await;
    let expiring = generated.data.expect("data")["secret_id"]
        .as_str()
        .expect("id")
        .to_string();
    let key = super::secret_id_key("approle/", "web", &tokens::token_key(&expiring));
    let mut record: super::secret_id::SecretIdRecord = state
        .store
        .get(Table::AuthRecords, &key)
        .expect("get")
        .expect("stored");
    record.expire_unix = Some(tokens::now_unix() - 1);
    state
        .store
        .write(|tx| tx.put(Table::AuthRecords, &key, &record))
        .expect("age it");
    refused(login(&state, &role_id, &expiring, ip("10.0.0.2")).await);
    assert!(
        state
            .store
            .get::<Value>(Table::AuthRecords, &key)
            .expect("get")
            .is_none()
    );
    // Destroyed: refused.
    let fresh = write(&state, "role/web/secret-id", json!({})).await;
    let fresh = fresh.data.expect("data")["secret_id"]
        .as_str()
        .expect("id")
        .to_string();
    write(
        &state,
        "role/web/secret-id/destroy",
        json!({"secret_id": fresh}),
    )
    .await;
    refused(login(&state, &role_id, &fresh, ip("10.0.0.3")).await);
}

#[tokio::test]
async fn a_login_from_outside_the_bound_cidrs_is_refused_and_spends_nothing() {
    let state = services();
    let (role_id, secret_id, _) = role_and_secret(
        &state,
        json!({"secret_id_bound_cidrs": ["127.0.0.1/32"], "token_bound_cidrs": "127.0.0.1/32"}),
        json!({"num_uses": 1}),
    )
    .await;
    let error = login(&state, &role_id, &secret_id, ip("127.0.0.2"))
        .await
        .expect_err("refused");
    assert_eq!(error.status.as_u16(), 400);
    assert_eq!(
        error.message,
        "source address \"127.0.0.2\" unauthorized through CIDR restrictions on the secret ID"
    );
    assert!(
        login(&state, &role_id, &secret_id, None).await.is_err(),
        "unknown address"
    );
    // Its one use is still there for the right address; the token is bound too.
    let response = login(&state, &role_id, &secret_id, ip("127.0.0.1"))
        .await
        .expect("login");
    let token = auth_of(&response)["client_token"]
        .as_str()
        .expect("token")
        .to_string();
    let found = tokens::lookup(&state.store, &token, tokens::now_unix())
        .expect("lookup")
        .expect("token");
    assert_eq!(found.record.bound_cidrs, vec!["127.0.0.1/32".to_string()]);

    // A secret ID's own cidr_list must lie inside the role's.
    let error = call(
        &state,
        paths(),
        MOUNT,
        Operation::Write,
        "role/web/secret-id",
        json!({"cidr_list": "10.0.0.0/8"}),
    )
    .await
    .expect_err("outside the role's blocks");
    assert!(
        error
            .message
            .contains("not within the role's secret_id_bound_cidrs"),
        "{error}"
    );
    let error = call(
        &state,
        paths(),
        MOUNT,
        Operation::Write,
        "role/web",
        json!({"secret_id_bound_cidrs": "10.0.0.0/33"}),
    )
    .await
    .expect_err("bad block");
    assert!(error.message.contains("10.0.0.0/33"), "{error}");
}

#[tokio::test]
async fn repeated_failures_are_answered_429_saying_when_to_retry() {
    let state = services();
    let (role_id, secret_id, _) = role_and_secret(&state, json!({}), json!({})).await;
    for _ in 0..5 {
        let error = login(&state, &role_id, "wrong", ip("192.0.2.66"))
            .await
            .expect_err("refused");
        assert_eq!(error.status.as_u16(), 400);
    }
    let error = login(&state, &role_id, &secret_id, ip("192.0.2.66"))
        .await
        .expect_err("locked");
    assert_eq!(error.status.as_u16(), 429);
    assert!(
        error.message.contains("retry in 2 seconds"),
        "{}",
        error.message
    );
    // The owner, from its own address, is not locked out by someone else's failures.
    login(&state, &role_id, &secret_id, ip("10.0.0.5"))
        .await
        .expect("owner logs in");
}

#[tokio::test]
async fn role_ids_are_unique_and_can_be_chosen() {
    let state = services();
    write(&state, "role/web", json!({})).await;
    write(&state, "role/db", json!({"role_id": "db-role-id"})).await;
    assert_eq!(
        read(&state, "role/db/role-id").await["role_id"],
        "db-role-id"
    );
    let error = call(
        &state,
        paths(),
        MOUNT,
        Operation::Write,
        "role/web/role-id",
        json!({"role_id": "db-role-id"}),
    )
    .await
    .expect_err("taken");
    assert!(error.message.contains("role_id already in use"), "{error}");
    write(&state, "role/web/role-id", json!({"role_id": "web-custom"})).await;
    let generated = write(&state, "role/web/secret-id", json!({})).await;
    let secret_id = generated.data.expect("data")["secret_id"]
        .as_str()
        .expect("id")
        .to_string();
    login(&state, "web-custom", &secret_id, None)
        .await
        .expect("login with the new role ID");
    let error = call(
        &state,
        paths(),
        MOUNT,
        Operation::Write,
        "role/open",
        json!({"bind_secret_id": false}),
    )
    .await
    .expect_err("no constraint");
    assert!(error.message.contains("at least one constraint"), "{error}");
    // Deleting a role deletes its secret IDs and frees its role ID.
    call(
        &state,
        paths(),
        MOUNT,
        Operation::Delete,
        "role/web",
        json!({}),
    )
    .await
    .expect("delete");
    assert!(
        state
            .store
            .scan::<Value>(Table::AuthRecords, "approle/secret_id")
            .expect("scan")
            .is_empty()
    );
    write(&state, "role/other", json!({"role_id": "web-custom"})).await;
    let listed = call(&state, paths(), MOUNT, Operation::List, "role", json!({}))
        .await
        .expect("list");
    assert_eq!(listed.data.expect("keys")["keys"], json!(["db", "other"]));
}

#[tokio::test]
async fn a_role_without_secret_ids_logs_in_only_from_its_cidrs() {
    let state = services();
    write(
        &state,
        "role/agent",
        json!({"bind_secret_id": false, "secret_id_bound_cidrs": "10.1.0.0/16"}),
    )
    .await;
    let role_id = read(&state, "role/agent/role-id").await["role_id"]
        .as_str()
        .expect("id")
        .to_string();
    login(&state, &role_id, "", ip("10.1.2.3"))
        .await
        .expect("inside");
    let error = login(&state, &role_id, "", ip("10.2.0.1"))
        .await
        .expect_err("outside");
    assert!(error.message.contains("CIDR restrictions"), "{error}");
}

#[tokio::test]
async fn revoking_a_login_token_revokes_its_leases() {
    let state = services();
    let (role_id, secret_id, _) = role_and_secret(&state, json!({}), json!({})).await;
    let response = login(&state, &role_id, &secret_id, None)
        .await
        .expect("login");
    let accessor = auth_of(&response)["accessor"]
        .as_str()
        .expect("accessor")
        .to_string();
    let now = tokens::now_unix();
    let lease = state
        .leases
        .register(
            crate::leases::NewLease {
                path_prefix: "ssh/creds/otp".into(),
                secret_kind: "test".into(),
                ttl: std::time::Duration::from_secs(3600),
                max_ttl: std::time::Duration::from_secs(3600),
                renewable: true,
                revoke_data: json!({}),
                owner_accessor: Some(accessor.clone()),
            },
            now,
        )
        .expect("lease");
    crate::auth::revoke_token(&state, &accessor, tokens::Revocation::Tree).expect("revoke");
    let after = state
        .leases
        .lookup(&lease.lease_id)
        .expect("lease kept until its revoker ran");
    assert!(
        after.expire_unix <= tokens::now_unix(),
        "the lease was made due"
    );
}
