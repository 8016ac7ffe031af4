//! One account: its state, its host, the version timeline, next rotation and last
//! verification, the actions rotate / verify / reconcile, and an explicit password reveal.
//!
//! The reveal is a POST (CSRF-checked) that reads `creds` through the API, so it is audited
//! like any API read and denied wherever the token's policies deny it; the password is shown
//! in that one answer (not cached: `Cache-Control: no-store`) and never put in a URL.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{Extensions, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde_json::{Map, Value};

use super::{error_page, field};
use crate::api::ApiError;
use crate::ui::client::{Visible, text};
use crate::ui::fleet::{OS_MOUNT, console_status};
use crate::ui::layout::{self, Section, action_form, status_badge};
use crate::ui::{Caller, UiState, csrf_refusal, html_response, remote_of, signed_in};

/// What the page shows of a revealed password.
struct Revealed {
    password: String,
    version: String,
    warnings: Vec<String>,
}

/// `GET /ui/hosts/:host/accounts/:account`.
pub async fn show(
    State(ui): State<UiState>,
    headers: HeaderMap,
    extensions: Extensions,
    Path((host, account)): Path<(String, String)>,
) -> Response {
    let caller = match signed_in(&ui, &headers, remote_of(&extensions)).await {
        Ok(caller) => caller,
        Err(redirect) => return redirect,
    };
    render(&caller, &host, &account, None).await
}

async fn render(
    caller: &Caller,
    host: &str,
    account: &str,
    revealed: Option<Revealed>,
) -> Response {
    let base = format!("{OS_MOUNT}/hosts/{host}/accounts/{account}");
    let loaded = async {
        let record = Visible::from_result(caller.client.read(&base).await)?;
        let versions = Visible::from_result(caller.client.read(&format!("{base}/versions")).await)?;
        let host_record = Visible::from_result(
            caller
                .client
                .read(&format!("{OS_MOUNT}/hosts/{host}"))
                .await,
        )?;
        Ok::<_, ApiError>((record, versions, host_record))
    }
    .await;
    let (record, versions, host_record) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => return error_page(caller, Section::Accounts, &error),
    };
    let content = html! {
        h1 { "Account " span #account-title { (account) } " on " (host) }
        @match &record {
            Visible::Denied => p.denied #account-denied { "This token may not read this account." },
            Visible::Shown(record) => (details(caller, host, account, record, revealed.as_ref())),
        }
        @if let Visible::Shown(versions) = &versions { (timeline(versions)) }
        @match &host_record {
            Visible::Shown(host_record) => (host_details(host, host_record)),
            Visible::Denied => p.denied { "This token may not read the host." },
        }
    };
    html_response(layout::page(
        &format!("{account} on {host}"),
        Section::Accounts,
        Some((&caller.identity, &caller.session.csrf)),
        caller.session.flash.as_ref(),
        content,
    ))
}

fn details(
    caller: &Caller,
    host: &str,
    account: &str,
    record: &Map<String, Value>,
    revealed: Option<&Revealed>,
) -> Markup {
    let status = console_status(record);
    let action = format!("/ui/hosts/{host}/accounts/{account}/action");
    let here = format!("/ui/hosts/{host}/accounts/{account}");
    let csrf = caller.session.csrf.as_str();
    let reason = match text(record, "status_detail") {
        detail if !detail.is_empty() => detail,
        _ => text(record, "last_error"),
    };
    html! {
        section aria-labelledby="state-heading" {
            h2 #state-heading { "State" }
            dl.facts {
                dt { "Status" } dd #account-status data-status=(status) { (status_badge(&status)) }
                @if !reason.is_empty() { dt { "Reason" } dd #account-reason { (reason) } }
                dt { "Username" } dd { (text(record, "username")) }
                dt { "Current version" } dd #current-version { (text(record, "current_version")) }
                dt { "Last rotation" } dd { (or_never(&text(record, "last_vault_rotation"))) }
                dt { "Next rotation" } dd #next-rotation { (or_none(&text(record, "next_vault_rotation"), "not scheduled")) }
                @if !text(record, "retry_after").is_empty() { dt { "Retry after" } dd { (text(record, "retry_after")) } }
                dt { "Last verification" } dd #last-verification {
                    (or_never(&text(record, "last_verified")))
                    @let result = text(record, "last_verification");
                    @if !result.is_empty() { " — " (result) }
                    @let detail = text(record, "last_verification_detail");
                    @if !detail.is_empty() { " (" (detail) ")" }
                }
                dt { "Next verification" } dd { (or_none(&text(record, "next_verification"), "no verify_period")) }
                @if !text(record, "parent_ref").is_empty() { dt { "Parent" } dd { (text(record, "parent_ref")) } }
            }
            div.actions {
                (action_form(&action, csrf, &[("action", "rotate"), ("return", &here)], "rotate", "Rotate now"))
                (action_form(&action, csrf, &[("action", "verify"), ("return", &here)], "verify", "Verify"))
                @if !text(record, "parent_ref").is_empty() {
                    (action_form(&action, csrf, &[("action", "reconcile"), ("return", &here)], "reconcile", "Reconcile"))
                }
                (action_form(&format!("{here}/reveal"), csrf, &[], "reveal", "Reveal password"))
            }
            @if let Some(revealed) = revealed {
                div.card.revealed #revealed role="status" {
                    p { "Password of version " (revealed.version) " (this read is in the audit log):" }
                    p { code #revealed-password { (revealed.password) } }
                    @for warning in &revealed.warnings { p.flash.error { (warning) } }
                }
            }
        }
    }
}

fn or_never(value: &str) -> String {
    or_none(value, "never")
}

fn or_none(value: &str, none: &str) -> String {
    if value.is_empty() {
        none.to_string()
    } else {
        value.to_string()
    }
}

/// Versions, newest first, each with when it was created and when it expired.
fn timeline(versions: &Map<String, Value>) -> Markup {
    let mut entries: Vec<(u64, String, String)> = versions
        .get("versions")
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .filter_map(|(number, times)| {
                    let times = times.as_object()?;
                    Some((
                        number.parse().ok()?,
                        text(times, "created_time"),
                        text(times, "expired_time"),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    entries.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    html! {
        section aria-labelledby="versions-heading" {
            h2 #versions-heading { "Versions" }
            ol.timeline #versions reversed {
                @for (number, created, expired) in &entries {
                    li data-version=(number) {
                        strong { "Version " (number) }
                        " created " time datetime=(created) { (created) }
                        @if expired.starts_with("0001-") || expired.is_empty() {
                            " — " span.badge.status-in_sync { "current" }
                        } @else {
                            ", expired " time datetime=(expired) { (expired) }
                        }
                    }
                }
            }
        }
    }
}

fn host_details(host: &str, record: &Map<String, Value>) -> Markup {
    html! {
        section aria-labelledby="host-heading" {
            h2 #host-heading { "Host " (host) }
            dl.facts #host-facts {
                dt { "Address" } dd { (text(record, "address")) ":" (text(record, "port")) }
                dt { "Site" } dd #host-site { (text(record, "site")) }
                dt { "Connection" } dd { (text(record, "connection")) }
                dt { "chpasswd command" } dd #host-chpasswd { code { (text(record, "chpasswd_command")) } }
                @let prompts = text(record, "passwd_prompts");
                @if !prompts.is_empty() { dt { "passwd prompts" } dd #host-prompts { code { (prompts) } } }
                @let policy = text(record, "password_policy");
                @if !policy.is_empty() { dt { "Password policy" } dd { (policy) } }
            }
        }
    }
}

/// A `return` field that stays inside the console (never an open redirect).
fn safe_return(form: &HashMap<String, String>, fallback: &str) -> String {
    let wanted = field(form, "return");
    if wanted.starts_with("/ui/") && !wanted.starts_with("//") && !wanted.contains("://") {
        wanted
    } else {
        fallback.to_string()
    }
}

/// `POST .../action`: rotate, verify or reconcile through the API; the outcome is a flash.
pub async fn act(
    State(ui): State<UiState>,
    headers: HeaderMap,
    extensions: Extensions,
    Path((host, account)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let caller = match signed_in(&ui, &headers, remote_of(&extensions)).await {
        Ok(caller) => caller,
        Err(redirect) => return redirect,
    };
    if let Some(refused) = csrf_refusal(&caller.session, form.get("csrf")) {
        return refused;
    }
    let back = safe_return(&form, &format!("/ui/hosts/{host}/accounts/{account}"));
    let action = field(&form, "action");
    if !matches!(action.as_str(), "rotate" | "verify" | "reconcile") {
        caller.flash(false, format!("unknown action {action}"));
        return Redirect::to(&back).into_response();
    }
    let path = format!("{OS_MOUNT}/hosts/{host}/accounts/{account}/{action}");
    match caller.client.write(&path, &Value::Object(Map::new())).await {
        Ok((data, warnings)) => {
            let mut message = match action.as_str() {
                "verify" if data.get("in_sync") == Some(&Value::Bool(true)) => {
                    format!("{host}/{account}: verified, in sync")
                }
                "verify" => format!("{host}/{account}: verification failed, out of sync"),
                done => format!(
                    "{host}/{account}: {done} committed version {}",
                    text(&data, "version")
                ),
            };
            for warning in &warnings {
                message.push_str(&format!("; {warning}"));
            }
            let ok = warnings.is_empty();
            caller.flash(ok, message);
        }
        Err(error) => caller.flash(
            false,
            format!("{host}/{account}: {action} failed: {}", error.message),
        ),
    }
    Redirect::to(&back).into_response()
}

/// `POST .../reveal`: reads the password through the API (audited) and shows it once.
pub async fn reveal(
    State(ui): State<UiState>,
    headers: HeaderMap,
    extensions: Extensions,
    Path((host, account)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let caller = match signed_in(&ui, &headers, remote_of(&extensions)).await {
        Ok(caller) => caller,
        Err(redirect) => return redirect,
    };
    if let Some(refused) = csrf_refusal(&caller.session, form.get("csrf")) {
        return refused;
    }
    let path = format!("{OS_MOUNT}/hosts/{host}/accounts/{account}/creds");
    match caller.client.read_raw(&path, &[]).await {
        Ok(response) => {
            let warnings = response.warnings.clone();
            let data = response.data.unwrap_or_default();
            let revealed = Revealed {
                password: text(&data, "password"),
                version: text(&data, "version"),
                warnings,
            };
            render(&caller, &host, &account, Some(revealed)).await
        }
        Err(error) => {
            caller.flash(
                false,
                format!("{host}/{account}: reveal refused: {}", error.message),
            );
            Redirect::to(&format!("/ui/hosts/{host}/accounts/{account}")).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_addresses_stay_in_the_console() {
        let form = |value: &str| HashMap::from([("return".to_string(), value.to_string())]);
        assert_eq!(safe_return(&form("/ui/"), "/x"), "/ui/");
        assert_eq!(safe_return(&form("https://evil.example/ui/"), "/x"), "/x");
        assert_eq!(safe_return(&form("//evil.example/ui/"), "/x"), "/x");
        assert_eq!(safe_return(&form("/v1/sys/health"), "/x"), "/x");
        assert_eq!(safe_return(&HashMap::new(), "/x"), "/x");
    }

    #[test]
    fn the_timeline_is_newest_first_and_marks_the_current_version() {
        let versions = serde_json::json!({"versions": {
            "1": {"created_time": "2026-01-01T00:00:00Z", "expired_time": "2026-01-02T00:00:00Z"},
            "2": {"created_time": "2026-01-02T00:00:00Z", "expired_time": "0001-01-01T00:00:00Z"},
        }});
        let html = timeline(versions.as_object().expect("object")).into_string();
        let two = html.find("Version 2").expect("v2");
        let one = html.find("Version 1").expect("v1");
        assert!(two < one, "{html}");
        assert!(html.contains("current"), "{html}");
        assert!(html.contains("expired"), "{html}");
    }

    #[test]
    fn host_fields_are_rendered_as_text() {
        let record = serde_json::json!({
            "address": "10.0.0.1", "port": 22, "site": "<b>s</b>",
            "chpasswd_command": "/bin/<script>alert(1)</script>",
        });
        let html = host_details("h", record.as_object().expect("object")).into_string();
        assert!(
            html.contains("/bin/&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(html.contains("&lt;b&gt;s&lt;/b&gt;"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
    }
}
