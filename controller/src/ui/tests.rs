//! The console through its router (no browser): headers, sign-in, CSRF, the ACL seen through
//! pages, escaping of stored values. The browser test is tests/tests/console_browser.rs.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::api::{self, AppState, InProcessCall};
use crate::engines;
use crate::tokens::{self, ClientToken};

const ROOT: &str = "root-token-ui-1";

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

/// The router under test, built once per test (its sessions live in it, as in a server).
struct Console {
    router: axum::Router,
    state: AppState,
}

impl Console {
    fn new(state: AppState) -> Self {
        Self {
            router: api::router(state.clone()),
            state,
        }
    }
}

async fn send(
    console: &Console,
    method: Method,
    uri: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let body = match form {
        Some(form) => {
            request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            Body::from(form.to_string())
        }
        None => Body::empty(),
    };
    let response = console
        .router
        .clone()
        .oneshot(request.body(body).expect("request"))
        .await
        .expect("answer");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .expect("body");
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn cookie_of(answer: &Answer) -> String {
    let set = answer
        .headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("a Set-Cookie");
    set.split(';').next().expect("pair").to_string()
}

fn csrf_of(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[start..start + 64].to_string()
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Signs in with `token` and answers the session cookie.
async fn sign_in(state: &Console, token: &str) -> String {
    let form_page = send(state, Method::GET, "/ui/login", None, None).await;
    let cookie = cookie_of(&form_page);
    let csrf = csrf_of(&form_page.body);
    let answer = send(
        state,
        Method::POST,
        "/ui/login",
        Some(&cookie),
        Some(&format!("csrf={csrf}&token={}", encode(token))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let signed = cookie_of(&answer);
    assert_ne!(signed, cookie, "a new session id after sign-in");
    signed
}

async fn api_write(state: &AppState, path: &str, body: Value) -> api::ApiResponse {
    api::call_as(
        state,
        InProcessCall {
            method: Method::POST,
            path,
            query: &[],
            body: Some(&body),
            token: &ClientToken::new(ROOT.into()),
            remote: None,
        },
    )
    .await
    .unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// A token made through the console's router's services (the root token's `auth/token/create`).
async fn api_write_through(console: &Console, path: &str, body: Value) -> String {
    let answer = api::call_as(
        &console.state,
        InProcessCall {
            method: Method::POST,
            path,
            query: &[],
            body: Some(&body),
            token: &ClientToken::new(ROOT.into()),
            remote: None,
        },
    )
    .await
    .unwrap_or_else(|error| panic!("{path}: {error}"));
    answer.auth.expect("auth")["client_token"]
        .as_str()
        .expect("client_token")
        .to_string()
}

/// A store with a host (whose chpasswd command carries markup), a parent `mgmt-admin` and
/// a child `app1`, a policy that denies `mgmt-*`, and a token holding it.
async fn fleet() -> (Console, String) {
    let state = crate::testing::services();
    engines::mounts::enable(&state.store, "os", "os", "").expect("mount");
    tokens::store_root_token(&state.store, ROOT).expect("root");
    api_write(
        &state,
        "os/config",
        json!({"ssh_host_key_trust_on_first_use": true}),
    )
    .await;
    api_write(
        &state,
        "os/hosts/web-1",
        json!({"address": "10.0.0.1", "site": "dc1",
               "chpasswd_command": "/usr/sbin/<script>alert(1)</script>"}),
    )
    .await;
    for (account, parent) in [("mgmt-admin", None), ("app1", Some("mgmt-admin"))] {
        let mut body = json!({"username": account.replace("-admin", ""), "password": format!("{account}-Secret-1"),
                              "verify_connection": false});
        if let Some(parent) = parent {
            body["parent_ref"] = json!(parent);
        }
        api_write(&state, &format!("os/hosts/web-1/accounts/{account}"), body).await;
    }
    api_write(
        &state,
        "sys/policies/acl/limited",
        json!({"policy": "path \"os/*\" { capabilities = [\"read\", \"list\", \"update\", \"create\"] }\npath \"os/hosts/+/accounts/mgmt-*\" { capabilities = [\"deny\"] }\npath \"sys/metrics\" { capabilities = [\"read\"] }"}),
    )
    .await;
    let created = api_write(
        &state,
        "auth/token/create",
        json!({"policies": ["limited", "<b id=xss-policy>p</b>"], "display_name": "<i>ops</i>"}),
    )
    .await;
    let token = created.auth.expect("auth")["client_token"]
        .as_str()
        .expect("client_token")
        .to_string();
    (Console::new(state), token)
}

#[tokio::test]
async fn every_console_answer_has_the_security_headers() {
    let state = Console::new(crate::testing::services());
    for uri in [
        "/ui/login",
        "/ui/static/console.js",
        "/ui/static/console.css",
        "/ui/nothing",
        "/ui/",
    ] {
        let answer = send(&state, Method::GET, uri, None, None).await;
        let header = |name: &str| {
            answer
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        assert_eq!(
            header("content-security-policy"),
            super::CONTENT_SECURITY_POLICY,
            "{uri}"
        );
        assert!(!super::CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
        assert_eq!(header("x-frame-options"), "DENY", "{uri}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{uri}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{uri}");
        assert_eq!(header("cache-control"), "no-store", "{uri}");
    }
    let posted = send(&state, Method::POST, "/ui/nothing", None, Some("a=b")).await;
    assert_eq!(posted.status, StatusCode::NOT_FOUND);
    assert_eq!(
        posted.headers["x-frame-options"], "DENY",
        "a POST to an unknown console path is the console's 404"
    );
    let script = send(&state, Method::GET, "/ui/static/console.js", None, None).await;
    assert!(
        script.headers[header::CONTENT_TYPE]
            .to_str()
            .expect("type")
            .starts_with("text/javascript")
    );
    // The API is untouched by the console's layer.
    let health = send(&state, Method::GET, "/v1/sys/health", None, None).await;
    assert!(health.headers.get("content-security-policy").is_none());
}

#[tokio::test]
async fn pages_need_a_session_and_forms_need_its_csrf_token() {
    let (state, _) = fleet().await;
    let anonymous = send(&state, Method::GET, "/ui/", None, None).await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
    assert_eq!(anonymous.headers[header::LOCATION], "/ui/login");

    // A wrong token keeps the form, with a message.
    let form_page = send(&state, Method::GET, "/ui/login", None, None).await;
    let cookie = cookie_of(&form_page);
    let set_cookie = form_page.headers[header::SET_COOKIE]
        .to_str()
        .expect("cookie");
    assert!(
        set_cookie.contains("HttpOnly")
            && set_cookie.contains("SameSite=Strict")
            && set_cookie.contains("Secure")
    );
    let csrf = csrf_of(&form_page.body);
    let wrong = send(
        &state,
        Method::POST,
        "/ui/login",
        Some(&cookie),
        Some(&format!("csrf={csrf}&token=nope")),
    )
    .await;
    assert!(
        wrong.body.contains("That token was not accepted"),
        "{}",
        wrong.body
    );
    // Sign-in without the form's CSRF token is refused.
    let forged = send(
        &state,
        Method::POST,
        "/ui/login",
        Some(&cookie),
        Some(&format!("csrf=x&token={ROOT}")),
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    // A token limited to a number of uses would be spent by a page or two: refused.
    let limited_uses =
        api_write_through(&state, "auth/token/create", json!({"num_uses": 50})).await;
    let form_page = send(&state, Method::GET, "/ui/login", None, None).await;
    let cookie = cookie_of(&form_page);
    let csrf = csrf_of(&form_page.body);
    let refused = send(
        &state,
        Method::POST,
        "/ui/login",
        Some(&cookie),
        Some(&format!("csrf={csrf}&token={limited_uses}")),
    )
    .await;
    assert!(
        refused.body.contains("limited to a number of uses"),
        "{}",
        refused.body
    );

    let session = sign_in(&state, ROOT).await;
    let overview = send(&state, Method::GET, "/ui/", Some(&session), None).await;
    assert_eq!(overview.status, StatusCode::OK);
    assert!(
        overview.body.contains("Fleet overview"),
        "{}",
        overview.body
    );
    assert!(
        !overview.body.contains(ROOT),
        "the token never goes back to the browser"
    );
    // An action without the CSRF token changes nothing.
    let forged = send(
        &state,
        Method::POST,
        "/ui/hosts/web-1/accounts/app1/action",
        Some(&session),
        Some("action=verify"),
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.body.contains("CSRF"), "{}", forged.body);

    // Sign-out ends the session.
    let csrf = csrf_of(&overview.body);
    let out = send(
        &state,
        Method::POST,
        "/ui/logout",
        Some(&session),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let after = send(&state, Method::GET, "/ui/", Some(&session), None).await;
    assert_eq!(after.headers[header::LOCATION], "/ui/login");
}

#[tokio::test]
async fn a_token_denied_mgmt_sees_no_mgmt_password_and_values_are_text() {
    let (state, limited) = fleet().await;
    let session = sign_in(&state, &limited).await;

    let browse = send(&state, Method::GET, "/ui/accounts", Some(&session), None).await;
    assert!(
        browse
            .body
            .contains("data-account=\"mgmt-admin\" data-status=\"hidden\""),
        "{}",
        browse.body
    );
    assert!(!browse.body.contains("mgmt-admin-Secret-1"));
    // The policy name and display name the token carries are text, not markup.
    assert!(
        browse.body.contains("&lt;b id=xss-policy&gt;p&lt;/b&gt;"),
        "{}",
        browse.body
    );
    assert!(!browse.body.contains("<b id=xss-policy>"));

    let page = send(
        &state,
        Method::GET,
        "/ui/hosts/web-1/accounts/mgmt-admin",
        Some(&session),
        None,
    )
    .await;
    assert!(
        page.body.contains("This token may not read this account"),
        "{}",
        page.body
    );
    let csrf = csrf_of(&page.body);
    let reveal = send(
        &state,
        Method::POST,
        "/ui/hosts/web-1/accounts/mgmt-admin/reveal",
        Some(&session),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(reveal.status, StatusCode::SEE_OTHER);
    let after = send(
        &state,
        Method::GET,
        "/ui/hosts/web-1/accounts/mgmt-admin",
        Some(&session),
        None,
    )
    .await;
    assert!(
        after.body.contains("reveal refused: permission denied"),
        "{}",
        after.body
    );
    assert!(!after.body.contains("mgmt-admin-Secret-1"));

    // The same token reveals app1, and the host's stored markup is shown as text.
    let revealed = send(
        &state,
        Method::POST,
        "/ui/hosts/web-1/accounts/app1/reveal",
        Some(&session),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert!(
        revealed
            .body
            .contains("<code id=\"revealed-password\">app1-Secret-1</code>"),
        "{}",
        revealed.body
    );
    assert!(
        revealed
            .body
            .contains("/usr/sbin/&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        revealed.body
    );
    assert!(!revealed.body.contains("<script>alert"));
}

#[tokio::test]
async fn an_error_echoing_operator_input_is_text() {
    let (state, _) = fleet().await;
    let session = sign_in(&state, ROOT).await;
    let page = send(&state, Method::GET, "/ui/rotations", Some(&session), None).await;
    let csrf = csrf_of(&page.body);
    let plan = send(
        &state,
        Method::POST,
        "/ui/rotations/plan",
        Some(&session),
        Some(&format!(
            "csrf={csrf}&site={}",
            encode("<img src=x id=xss-site>")
        )),
    )
    .await;
    assert!(
        plan.body.contains("&lt;img src=x id=xss-site&gt;"),
        "{}",
        plan.body
    );
    assert!(!plan.body.contains("<img src=x"), "{}", plan.body);

    let plan = send(
        &state,
        Method::POST,
        "/ui/rotations/plan",
        Some(&session),
        Some(&format!("csrf={csrf}&account=app*")),
    )
    .await;
    assert!(plan.body.contains("1 accounts on 1 hosts"), "{}", plan.body);
    assert!(plan.body.contains("id=\"start-button\""), "{}", plan.body);
}
