//! Issue 15, hostile input over HTTPS (curl `--path-as-is` against `rotor server -dev`):
//! every spelling of a path gets the authorization of its one canonical form, so no ACL rule
//! is bypassed by `//`, `/./`, a trailing `/`, percent escapes or the case of a name; and an
//! anonymous caller cannot map the API, because routing answers (404, 405) come only after
//! authentication.

mod core_common;
mod support;

use anyhow::{Result, bail};
use core_common::{create_token, curl_path_as_is, ok};
use serde_json::json;
use support::Controller;

const HOST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB5m6X3b1x9Qm9l5jF0yVQ0P0n7p7q8mY0cZ2b7e6a5d";

/// The rules under test: reads and lists under `os/`, a denied account prefix, and ACL
/// policy writes where one name is denied.
const POLICY: &str = r#"
path "os/*" { capabilities = ["read", "list"] }
path "os/hosts/+/accounts/mgmt-*" { capabilities = ["deny"] }
path "sys/policies/acl/*" { capabilities = ["create", "update", "read"] }
path "sys/policies/acl/admin" { capabilities = ["deny"] }
"#;

/// Spellings of `path` (segments joined by `/`) that clients and attackers send.
fn spellings(path: &str) -> Vec<String> {
    let segments: Vec<&str> = path.split('/').collect();
    let (first, rest) = (segments[0], segments[1..].join("/"));
    let last = segments.len() - 1;
    let mut escaped_letter = segments.clone();
    let escaped = format!(
        "%{:02X}{}",
        segments[last].as_bytes()[0],
        &segments[last][1..]
    );
    escaped_letter[last] = &escaped;
    vec![
        path.to_string(),
        format!("{first}//{rest}"),
        format!("{first}///{rest}"),
        format!("/{path}"),
        format!("{first}/./{rest}"),
        format!("{path}/"),
        format!("{path}//"),
        format!("{path}/."),
        format!("{first}%2F{rest}"),
        format!("{first}%2f{rest}"),
        format!("{first}/%2E/{rest}"),
        format!("{first}/%2e/{rest}"),
        escaped_letter.join("/"),
    ]
}

fn mixed_case(path: &str) -> Vec<String> {
    let (first, rest) = path.split_once('/').unwrap_or((path, ""));
    let mut capitalised = first.to_string();
    capitalised[..1].make_ascii_uppercase();
    vec![
        format!("{}/{rest}", first.to_ascii_uppercase()),
        format!("{capitalised}/{rest}"),
    ]
}

fn expect(
    controller: &Controller,
    method: &str,
    path: &str,
    token: Option<&str>,
    allowed: &[u16],
) -> Result<u16> {
    let (status, body) = curl_path_as_is(controller, method, path, token)?;
    if !allowed.contains(&status) {
        bail!("{method} /v1/{path} answered {status} (expected one of {allowed:?}): {body}");
    }
    Ok(status)
}

#[test]
fn no_spelling_of_a_path_escapes_its_acl_rule() -> Result<()> {
    let controller = Controller::start_dev()?;
    let root = controller.token.as_str();
    ok(
        &controller,
        "POST",
        "os/hosts/h1",
        root,
        Some(json!({"address": "192.0.2.10", "site": "dc1", "ssh_host_key": HOST_KEY})),
    )?;
    for account in ["mgmt-user", "app"] {
        ok(
            &controller,
            "POST",
            &format!("os/hosts/h1/accounts/{account}"),
            root,
            Some(json!({"password": format!("{account}-Secret-1"), "verify_connection": false})),
        )?;
    }
    ok(
        &controller,
        "PUT",
        "sys/policies/acl/paths",
        root,
        Some(json!({ "policy": POLICY })),
    )?;
    let (token, _) = create_token(&controller, root, json!({"policies": ["paths"]}))?;
    let token = Some(token.as_str());

    // Denied: the mgmt account's password, in every spelling.
    let denied = "os/hosts/h1/accounts/mgmt-user/creds";
    for path in spellings(denied) {
        expect(&controller, "GET", &path, token, &[403])?;
    }
    // Allowed: the app account's password, in every spelling, as one path.
    let allowed = "os/hosts/h1/accounts/app/creds";
    for path in spellings(allowed) {
        expect(&controller, "GET", &path, token, &[200])?;
    }
    // Lists follow the same rule, including the list of the denied prefix's parent.
    for path in spellings("os/hosts/h1/accounts") {
        expect(&controller, "LIST", &path, token, &[200])?;
    }
    // A mount's name is case-sensitive: another case names no mount, and never grants.
    for path in mixed_case(denied).into_iter().chain(mixed_case(allowed)) {
        expect(&controller, "GET", &path, token, &[403])?;
        expect(&controller, "GET", &path, Some(root), &[404])?;
    }
    // `..` is refused outright, never resolved into another path.
    expect(
        &controller,
        "GET",
        "os/hosts/h1/accounts/app/../mgmt-user/creds",
        token,
        &[400],
    )?;
    expect(
        &controller,
        "GET",
        "os/hosts/h1/accounts/app/%2E%2E/mgmt-user/creds",
        token,
        &[400],
    )?;

    // Policy names are folded to lowercase by the store: the ACL judges the folded name.
    let policy_body = json!({"policy": "path \"os/*\" { capabilities = [\"read\"] }"});
    for name in ["admin", "Admin", "ADMIN", "aDmIn"] {
        let path = format!("sys/policies/acl/{name}");
        let (status, body) =
            core_common::curl(&controller, "PUT", &path, token, Some(&policy_body))?;
        if status != 403 {
            bail!("PUT /v1/{path} answered {status}, expected 403: {body}");
        }
    }
    let (status, _) = core_common::curl(
        &controller,
        "GET",
        "sys/policies/acl/admin",
        Some(root),
        None,
    )?;
    assert_eq!(status, 404, "a denied policy write was performed");
    let (status, body) = core_common::curl(
        &controller,
        "PUT",
        "sys/policies/acl/Team",
        token,
        Some(&policy_body),
    )?;
    assert!(
        (200..300).contains(&status),
        "an allowed policy write was refused ({status}): {body}"
    );
    ok(&controller, "GET", "sys/policies/acl/team", root, None)?;
    Ok(())
}

#[test]
fn routing_answers_only_after_authentication() -> Result<()> {
    let controller = Controller::start_dev()?;
    let root = controller.token.as_str();
    let (limited, _) = create_token(&controller, root, json!({"policies": ["default"]}))?;
    let probes = [
        ("GET", "os/nosuchpath"),
        ("GET", "nosuchmount/x"),
        ("GET", "auth/nosuchmethod/login"),
        ("PATCH", "os/hosts"),
        ("DELETE", "os/hosts/h1/accounts/app/creds"),
    ];
    for (method, path) in probes {
        // No token, a token nobody issued, and a token whose policies do not reach the path:
        // all are told only "permission denied".
        for token in [None, Some("not-a-token"), Some(limited.as_str())] {
            let (status, body) = curl_path_as_is(&controller, method, path, token)?;
            if status != 403 {
                bail!("{method} /v1/{path} with {token:?} answered {status}, expected 403: {body}");
            }
        }
    }
    // With a token that reaches the path, the routing answer is the real one.
    expect(&controller, "GET", "os/nosuchpath", Some(root), &[404])?;
    expect(&controller, "GET", "nosuchmount/x", Some(root), &[404])?;
    expect(&controller, "PATCH", "os/hosts", Some(root), &[405])?;
    // The documented unauthenticated paths stay open.
    expect(&controller, "GET", "sys/health", None, &[200])?;
    expect(&controller, "GET", "sys//health/", None, &[200])?;
    Ok(())
}
