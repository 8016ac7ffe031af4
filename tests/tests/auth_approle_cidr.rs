//! Scenario: AppRole's `secret_id_bound_cidrs` judged against a real client on another
//! network. A site host (its own network) is connected to the controller's core network and
//! logs in over HTTPS from its own address there: a role bound to a block without that
//! address is refused with the implementation's CIDR message naming the address; a role bound
//! to the host's address /32 logs in, and the token it gets reads `auth/token/lookup-self`.
//! Owns only this scenario.

use std::net::IpAddr;

use anyhow::{Context, Result, bail};
use rotor_tests::prelude::*;
use serde_json::Value;

const CA_IN_HOST: &str = "/tmp/rotor-ca.pem";

/// curl from inside `host` to the controller's API, by the name its certificate carries
/// (`--resolve` to its core address); returns (HTTP status, parsed body).
fn curl_from(
    host: &Host,
    api: &(String, IpAddr),
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<(u16, Value)> {
    let (name, address) = api;
    let mut script = format!(
        "curl -sS --max-time 20 --cacert {CA_IN_HOST} --resolve {name}:8200:{address} \
         -X {method} -w '\\n%{{http_code}}' -H 'Content-Type: application/json'"
    );
    if body.is_some() {
        script.push_str(" --data-binary @-");
    }
    if let Some(token) = token {
        script.push_str(&format!(" -H 'X-Vault-Token: {token}'"));
    }
    script.push_str(&format!(" https://{name}:8200/v1/{path}"));
    let stdin = body.map(Value::to_string).unwrap_or_default();
    let output = host
        .container()
        .exec_with_stdin(&script, stdin.as_bytes())?;
    if !output.success() {
        bail!(
            "curl {method} {path} from {} failed: {}",
            host.name(),
            output.diagnostics()
        );
    }
    let (text, status) = output
        .stdout
        .trim_end()
        .rsplit_once('\n')
        .with_context(|| format!("no status line in curl output: {}", output.stdout))?;
    let status = status.trim().parse::<u16>().context("HTTP status")?;
    let value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(text).with_context(|| format!("body is not JSON: {text}"))?
    };
    Ok((status, value))
}

/// A role `name` bound to `cidr`, and a fresh (role_id, secret_id) for it.
fn role_credentials(rotor: &Rotor, name: &str, cidr: &str) -> Result<(String, String)> {
    let path = format!("auth/approle/role/{name}");
    let bound = format!("secret_id_bound_cidrs={cidr}");
    rotor.cli(&["write", &path, &bound, "token_ttl=10m"])?;
    let role_id = rotor.cli_json(&["read", &format!("{path}/role-id")])?["data"]["role_id"]
        .as_str()
        .context("role_id")?
        .to_string();
    let secret_id =
        rotor.cli_json(&["write", "-f", &format!("{path}/secret-id")])?["data"]["secret_id"]
            .as_str()
            .context("secret_id")?
            .to_string();
    Ok((role_id, secret_id))
}

#[test]
fn approle_bound_cidrs_judge_a_container_on_another_network() -> Result<()> {
    if skip_requested("auth_approle_cidr") {
        return Ok(());
    }
    let site = Site::new("a")?;
    let rotor = Rotor::start(&[&site])?;
    let host = site.host("app-1").start()?;
    host.container().connect_to(rotor.core())?;
    let client = host.container().address_on(rotor.core())?;
    let api_url = rotor.api_url()?;
    let controller_address: IpAddr = api_url
        .strip_prefix("https://")
        .and_then(|rest| rest.strip_suffix(":8200"))
        .with_context(|| format!("unexpected API URL {api_url}"))?
        .parse()
        .with_context(|| format!("no address in API URL {api_url}"))?;
    assert_ne!(client, controller_address);
    let api = (rotor.controller().name().to_string(), controller_address);

    let ca = rotor.controller().shell_output("cat /data/ca.pem")?;
    assert!(ca.success(), "reading the CA: {}", ca.diagnostics());
    let copied = host
        .container()
        .exec_with_stdin(&format!("cat > {CA_IN_HOST}"), ca.stdout.as_bytes())?;
    assert!(copied.success(), "{}", copied.diagnostics());

    rotor.cli(&["write", "sys/auth/approle", "type=approle"])?;

    // Bound to the controller's own address: same network, not the client's address.
    let (role_id, secret_id) =
        role_credentials(&rotor, "elsewhere", &format!("{controller_address}/32"))?;
    let login = serde_json::json!({"role_id": role_id, "secret_id": secret_id});
    let (status, answer) = curl_from(
        &host,
        &api,
        "POST",
        "auth/approle/login",
        None,
        Some(&login),
    )?;
    assert_eq!(status, 400, "{answer}");
    let expected = format!(
        "source address \"{client}\" unauthorized through CIDR restrictions on the secret ID"
    );
    assert_eq!(answer["errors"], serde_json::json!([expected]), "{answer}");

    // Bound to the client's own address: it logs in, and the token works.
    let (role_id, secret_id) = role_credentials(&rotor, "here", &format!("{client}/32"))?;
    let login = serde_json::json!({"role_id": role_id, "secret_id": secret_id});
    let (status, answer) = curl_from(
        &host,
        &api,
        "POST",
        "auth/approle/login",
        None,
        Some(&login),
    )?;
    assert_eq!(status, 200, "{answer}");
    let token = answer["auth"]["client_token"]
        .as_str()
        .context("auth.client_token")?
        .to_string();
    let (status, lookup) = curl_from(
        &host,
        &api,
        "GET",
        "auth/token/lookup-self",
        Some(&token),
        None,
    )?;
    assert_eq!(status, 200, "{lookup}");
    assert_eq!(lookup["data"]["meta"]["role_name"], "here", "{lookup}");
    Ok(())
}
