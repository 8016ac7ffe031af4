//! Fleet rotations: plan one (a dry run of `os/rotate`, whose wave plan is shown before
//! anything runs), start it, watch it (progress per wave and per site, failures as they
//! happen; `console.js` refreshes the progress block from `/ui/rotations/:id/progress` while
//! the run is running) and stop it (`os/rotations/:id/stop`).

use std::collections::{BTreeMap, HashMap};

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{Extensions, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde_json::{Map, Value, json};

use super::{error_page, field};
use crate::ui::client::text;
use crate::ui::fleet::OS_MOUNT;
use crate::ui::layout::{self, Section, action_form};
use crate::ui::{Caller, UiState, csrf_refusal, html_response, remote_of, signed_in};

/// The plan form's fields, as `os/rotate` names them.
const PLAN_FIELDS: [(&str, &str, &str); 7] = [
    (
        "site",
        "Site",
        "only hosts of this site (empty: every site)",
    ),
    ("host", "Host glob", "like web-* (empty: every host)"),
    (
        "account",
        "Account glob",
        "like app* (empty: every account)",
    ),
    (
        "canary",
        "Canary hosts",
        "hosts in the first wave (default 1)",
    ),
    (
        "wave_size",
        "Wave size",
        "hosts in each later wave (default 10)",
    ),
    (
        "max_parallel_per_site",
        "Hosts at once per site",
        "default 4",
    ),
    (
        "failure_threshold",
        "Failure threshold",
        "stop after more failures than this: a count or a percentage like 10% (default 0)",
    ),
];

/// The `os/rotate` body from the form: only fields given, numbers as numbers.
fn rotate_body(form: &HashMap<String, String>, dry_run: bool) -> Value {
    let mut body = Map::new();
    for (name, _, _) in PLAN_FIELDS {
        let value = field(form, name);
        if value.is_empty() {
            continue;
        }
        let number = matches!(name, "canary" | "wave_size" | "max_parallel_per_site")
            .then(|| value.parse::<i64>().ok())
            .flatten();
        body.insert(
            name.to_string(),
            number.map_or_else(|| Value::String(value.clone()), Value::from),
        );
    }
    body.insert("dry_run".into(), Value::Bool(dry_run));
    Value::Object(body)
}

fn page(caller: &Caller, title: &str, content: Markup) -> Response {
    html_response(layout::page(
        title,
        Section::Rotations,
        Some((&caller.identity, &caller.session.csrf)),
        caller.session.flash.as_ref(),
        content,
    ))
}

fn plan_form(csrf: &str, form: &HashMap<String, String>) -> Markup {
    html! {
        form.card.plan #plan-form method="post" action="/ui/rotations/plan" {
            input type="hidden" name="csrf" value=(csrf);
            @for (name, label, hint) in PLAN_FIELDS {
                div.field {
                    label for={ "plan-" (name) } { (label) }
                    input type="text" id={ "plan-" (name) } name=(name) value=(field(form, name)) aria-describedby={ "hint-" (name) };
                    span.hint id={ "hint-" (name) } { (hint) }
                }
            }
            button type="submit" #plan-button { "Show the plan (dry run)" }
        }
    }
}

/// `GET /ui/rotations`: the plan form and the runs.
pub async fn index(
    State(ui): State<UiState>,
    headers: HeaderMap,
    extensions: Extensions,
) -> Response {
    let caller = match signed_in(&ui, &headers, remote_of(&extensions)).await {
        Ok(caller) => caller,
        Err(redirect) => return redirect,
    };
    render_index(&caller, &HashMap::new(), None).await
}

async fn render_index(
    caller: &Caller,
    form: &HashMap<String, String>,
    error: Option<&str>,
) -> Response {
    let runs = match caller.client.list(&format!("{OS_MOUNT}/rotations")).await {
        Ok((ids, _)) => {
            let mut runs = Vec::new();
            for id in ids {
                if let Ok(run) = caller
                    .client
                    .read(&format!("{OS_MOUNT}/rotations/{id}"))
                    .await
                {
                    runs.push(run);
                }
            }
            runs.sort_by_key(|run| std::cmp::Reverse(text(run, "created_time")));
            Some(runs)
        }
        Err(_) => None,
    };
    let content = html! {
        h1 { "Fleet rotations" }
        @if let Some(error) = error { p.flash.error #plan-error role="alert" { (error) } }
        h2 { "Plan a rotation" }
        (plan_form(&caller.session.csrf, form))
        h2 { "Runs" }
        @match &runs {
            None => p.denied { "This token may not list fleet rotations." },
            Some(runs) if runs.is_empty() => p { "No fleet rotation has run." },
            Some(runs) => table #runs {
                thead { tr { th scope="col" { "Run" } th scope="col" { "State" } th scope="col" { "Started" } th scope="col" { "Succeeded" } th scope="col" { "Failed" } th scope="col" { "Planned" } } }
                tbody { @for run in runs {
                    tr {
                        td { a href={ "/ui/rotations/" (text(run, "id")) } { code { (text(run, "id")) } } }
                        td { (text(run, "state")) }
                        td { (text(run, "created_time")) }
                        td { (text(run, "succeeded")) }
                        td { (text(run, "failed")) }
                        td { (text(run, "planned")) }
                    }
                } }
            },
        }
    };
    page(caller, "Fleet rotations", content)
}

/// `POST /ui/rotations/plan`: the dry run, shown wave by wave, with a button to start it.
pub async fn plan(
    State(ui): State<UiState>,
    headers: HeaderMap,
    extensions: Extensions,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let caller = match signed_in(&ui, &headers, remote_of(&extensions)).await {
        Ok(caller) => caller,
        Err(redirect) => return redirect,
    };
    if let Some(refused) = csrf_refusal(&caller.session, form.get("csrf")) {
        return refused;
    }
    let plan = match caller
        .client
        .write(&format!("{OS_MOUNT}/rotate"), &rotate_body(&form, true))
        .await
    {
        Ok((plan, _)) => plan,
        Err(error) => return render_index(&caller, &form, Some(&error.message)).await,
    };
    let content = html! {
        h1 { "Plan (dry run)" }
        p #plan-summary {
            (text(&plan, "accounts")) " accounts on " (text(&plan, "hosts")) " hosts in "
            (plan.get("waves").and_then(Value::as_array).map_or(0, Vec::len)) " waves; at most "
            (text(&plan, "max_parallel_per_site")) " hosts at once per site; stops after more than "
            (text(&plan, "failure_threshold")) " failures. Nothing has changed yet."
        }
        ol.waves #plan-waves {
            @for (index, wave) in plan.get("waves").and_then(Value::as_array).into_iter().flatten().enumerate() {
                li {
                    strong { "Wave " (index + 1) @if index == 0 { " (canary)" } }
                    ul { @for host in wave.as_array().into_iter().flatten() {
                        li.plan-host {
                            (host["host"].as_str().unwrap_or("")) " (site " (host["site"].as_str().unwrap_or("—")) "): "
                            (host["accounts"].as_array().into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
                        }
                    } }
                }
            }
        }
        form.card #start-form method="post" action="/ui/rotations/start" {
            input type="hidden" name="csrf" value=(caller.session.csrf);
            @for (name, _, _) in PLAN_FIELDS {
                input type="hidden" name=(name) value=(field(&form, name));
            }
            button type="submit" #start-button { "Start this rotation" }
            " "
            a href="/ui/rotations" { "Cancel" }
        }
    };
    page(&caller, "Plan", content)
}

/// `POST /ui/rotations/start`: starts the run and shows it.
pub async fn start(
    State(ui): State<UiState>,
    headers: HeaderMap,
    extensions: Extensions,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let caller = match signed_in(&ui, &headers, remote_of(&extensions)).await {
        Ok(caller) => caller,
        Err(redirect) => return redirect,
    };
    if let Some(refused) = csrf_refusal(&caller.session, form.get("csrf")) {
        return refused;
    }
    match caller
        .client
        .write(&format!("{OS_MOUNT}/rotate"), &rotate_body(&form, false))
        .await
    {
        Ok((started, _)) => {
            let id = text(&started, "id");
            caller.flash(true, format!("fleet rotation {id} started"));
            Redirect::to(&format!("/ui/rotations/{id}")).into_response()
        }
        Err(error) => render_index(&caller, &form, Some(&error.message)).await,
    }
}

/// `GET /ui/rotations/:id`.
pub async fn show(
    State(ui): State<UiState>,
    headers: HeaderMap,
    extensions: Extensions,
    Path(id): Path<String>,
) -> Response {
    let caller = match signed_in(&ui, &headers, remote_of(&extensions)).await {
        Ok(caller) => caller,
        Err(redirect) => return redirect,
    };
    let run = match caller
        .client
        .read(&format!("{OS_MOUNT}/rotations/{id}"))
        .await
    {
        Ok(run) => run,
        Err(error) => return error_page(&caller, Section::Rotations, &error),
    };
    let running = text(&run, "state") == "running";
    let content = html! {
        h1 { "Fleet rotation " code { (id) } }
        div #progress data-progress-url={ "/ui/rotations/" (id) "/progress" } aria-live="polite" {
            (progress_block(&run))
        }
        @if running {
            (action_form(&format!("/ui/rotations/{id}/stop"), &caller.session.csrf, &[], "stop-button", "Stop this rotation"))
            p.hint { "Stopping lets hosts already rotating finish; hosts not started are left untouched." }
        }
    };
    page(&caller, "Fleet rotation", content)
}

/// `GET /ui/rotations/:id/progress`: the progress block alone (what `console.js` polls).
pub async fn progress(
    State(ui): State<UiState>,
    headers: HeaderMap,
    extensions: Extensions,
    Path(id): Path<String>,
) -> Response {
    let caller = match signed_in(&ui, &headers, remote_of(&extensions)).await {
        Ok(caller) => caller,
        Err(_) => return axum::http::StatusCode::UNAUTHORIZED.into_response(),
    };
    match caller
        .client
        .read(&format!("{OS_MOUNT}/rotations/{id}"))
        .await
    {
        Ok(run) => html_response(progress_block(&run)),
        Err(error) => (error.status, error.message).into_response(),
    }
}

/// `POST /ui/rotations/:id/stop`.
pub async fn stop(
    State(ui): State<UiState>,
    headers: HeaderMap,
    extensions: Extensions,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let caller = match signed_in(&ui, &headers, remote_of(&extensions)).await {
        Ok(caller) => caller,
        Err(redirect) => return redirect,
    };
    if let Some(refused) = csrf_refusal(&caller.session, form.get("csrf")) {
        return refused;
    }
    match caller
        .client
        .write(&format!("{OS_MOUNT}/rotations/{id}/stop"), &json!({}))
        .await
    {
        Ok(_) => caller.flash(true, format!("fleet rotation {id}: stop requested")),
        Err(error) => caller.flash(
            false,
            format!("fleet rotation {id}: stop refused: {}", error.message),
        ),
    }
    Redirect::to(&format!("/ui/rotations/{id}")).into_response()
}

/// What became of a group's accounts (a wave's, a site's).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub succeeded: usize,
    pub failed: usize,
    /// Not attempted (the run stopped first) or interrupted.
    pub skipped: usize,
    pub total: usize,
}

impl Tally {
    /// Accounts whose outcome is known.
    pub fn settled(&self) -> usize {
        self.succeeded + self.failed + self.skipped
    }
}

fn tally_account(tally: &mut Tally, state: &str) {
    tally.total += 1;
    match state {
        "succeeded" => tally.succeeded += 1,
        "failed" => tally.failed += 1,
        "not_attempted" | "interrupted" => tally.skipped += 1,
        _ => {}
    }
}

/// Per wave, and per site over the whole run.
pub fn tallies(run: &Map<String, Value>) -> (Vec<Tally>, BTreeMap<String, Tally>) {
    let mut waves = Vec::new();
    let mut sites: BTreeMap<String, Tally> = BTreeMap::new();
    for wave in run
        .get("waves")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mut tally = Tally::default();
        for host in wave.as_array().into_iter().flatten() {
            let site = host["site"].as_str().unwrap_or("(local)").to_string();
            for account in host["accounts"].as_array().into_iter().flatten() {
                let state = account["state"].as_str().unwrap_or("");
                tally_account(&mut tally, state);
                tally_account(sites.entry(site.clone()).or_default(), state);
            }
        }
        waves.push(tally);
    }
    (waves, sites)
}

fn bar(label: &str, id: &str, tally: Tally) -> Markup {
    html! {
        div.bar {
            label for=(id) {
                (label) ": " (tally.succeeded) "/" (tally.total) " rotated"
                @if tally.failed > 0 { ", " strong.failed { (tally.failed) " failed" } }
                @if tally.skipped > 0 { ", " (tally.skipped) " not attempted" }
            }
            progress id=(id) value=(tally.settled()) max=(tally.total.max(1)) { (tally.settled()) "/" (tally.total) }
        }
    }
}

/// The run's state, a bar per wave and per site, and every failure with its reason.
pub fn progress_block(run: &Map<String, Value>) -> Markup {
    let (waves, sites) = tallies(run);
    let state = text(run, "state");
    let failures: Vec<(String, String, String)> = run
        .get("waves")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|wave| wave.as_array().cloned().unwrap_or_default())
        .flat_map(|host| {
            let name = host["host"].as_str().unwrap_or("").to_string();
            host["accounts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|a| a["state"] == "failed")
                .map(move |a| {
                    (
                        name.clone(),
                        a["account"].as_str().unwrap_or("").to_string(),
                        a["error"].as_str().unwrap_or("").to_string(),
                    )
                })
        })
        .collect();
    html! {
        div #run data-state=(state) {
            p #run-state { "State: " strong { (state) }
                " — " (text(run, "succeeded")) " succeeded, " (text(run, "failed")) " failed, "
                (text(run, "not_attempted")) " not attempted of " (text(run, "planned")) }
            @let reason = text(run, "stop_reason");
            @if !reason.is_empty() { p.flash.error #stop-reason { (reason) } }
            h2 { "Waves" }
            @for (index, tally) in waves.iter().enumerate() {
                (bar(&format!("Wave {}{}", index + 1, if index == 0 { " (canary)" } else { "" }), &format!("wave-{}", index + 1), *tally))
            }
            h2 { "Sites" }
            @for (site, tally) in &sites {
                (bar(&format!("Site {site}"), &format!("site-{site}"), *tally))
            }
            @if !failures.is_empty() {
                h2 { "Failures" }
                ul #failures { @for (host, account, error) in &failures { li { strong { (host) "/" (account) } ": " (error) } } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> Map<String, Value> {
        json!({
            "state": "running", "succeeded": 1, "failed": 1, "not_attempted": 0, "planned": 3,
            "waves": [
                [{"host": "a", "site": "s1", "accounts": [{"account": "x", "state": "succeeded"}]}],
                [{"host": "b", "site": "s2", "accounts": [
                    {"account": "x", "state": "failed", "error": "<img src=x onerror=alert(1)>"},
                    {"account": "y", "state": "running"}]}],
            ],
        })
        .as_object()
        .cloned()
        .expect("object")
    }

    #[test]
    fn tallies_per_wave_and_site() {
        let (waves, sites) = tallies(&run());
        let tally = |succeeded, failed, skipped, total| Tally {
            succeeded,
            failed,
            skipped,
            total,
        };
        assert_eq!(waves[0], tally(1, 0, 0, 1));
        assert_eq!(waves[1], tally(0, 1, 0, 2));
        assert_eq!(sites["s2"], tally(0, 1, 0, 2));
        assert_eq!(waves[1].settled(), 1);
    }

    #[test]
    fn failures_from_hosts_are_text() {
        let html = progress_block(&run()).into_string();
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("data-state=\"running\""), "{html}");
        assert!(
            html.contains("<progress id=\"wave-2\" value=\"1\" max=\"2\">"),
            "{html}"
        );
    }

    #[test]
    fn the_rotate_body_has_only_given_fields_and_numbers() {
        let form = HashMap::from([
            ("site".to_string(), "dc1".to_string()),
            ("canary".to_string(), "2".to_string()),
            ("host".to_string(), " ".to_string()),
            ("failure_threshold".to_string(), "10%".to_string()),
        ]);
        assert_eq!(
            rotate_body(&form, true),
            json!({"site": "dc1", "canary": 2, "failure_threshold": "10%", "dry_run": true})
        );
    }
}
