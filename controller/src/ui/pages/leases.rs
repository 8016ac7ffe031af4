//! Leases: who holds what until when (`sys/leases/lookup`, which needs sudo), and revoke.

use std::collections::HashMap;

use axum::Form;
use axum::extract::State;
use axum::http::{Extensions, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde_json::json;

use super::{error_page, field};
use crate::ui::fleet;
use crate::ui::layout::{self, Section, action_form};
use crate::ui::{UiState, csrf_refusal, html_response, remote_of, signed_in};

/// `GET /ui/leases`.
pub async fn index(
    State(ui): State<UiState>,
    headers: HeaderMap,
    extensions: Extensions,
) -> Response {
    let caller = match signed_in(&ui, &headers, remote_of(&extensions)).await {
        Ok(caller) => caller,
        Err(redirect) => return redirect,
    };
    let leases = match fleet::leases(&caller.client).await {
        Ok(leases) => leases,
        Err(error) => return error_page(&caller, Section::Leases, &error),
    };
    let content = html! {
        h1 { "Leases" }
        @match &leases {
            None => p.denied { "This token may not list leases (sys/leases/lookup needs sudo)." },
            Some(leases) if leases.is_empty() => p #leases-none { "No lease is outstanding." },
            Some(leases) => table #leases {
                thead { tr { th scope="col" { "Lease" } th scope="col" { "Engine" } th scope="col" { "Expires" } th scope="col" { "TTL (s)" } th scope="col" { "Revocation error" } th scope="col" { "Action" } } }
                tbody { @for (index, lease) in leases.iter().enumerate() {
                    tr {
                        td { code { (lease.id) } }
                        td { (lease.engine) }
                        td { (lease.expire_time) }
                        td { (lease.ttl) }
                        td { (lease.last_revocation_error) }
                        td { (action_form("/ui/leases/revoke", &caller.session.csrf, &[("lease_id", &lease.id)], &format!("revoke-{index}"), "Revoke")) }
                    }
                } }
            },
        }
    };
    html_response(layout::page(
        "Leases",
        Section::Leases,
        Some((&caller.identity, &caller.session.csrf)),
        caller.session.flash.as_ref(),
        content,
    ))
}

/// `POST /ui/leases/revoke`.
pub async fn revoke(
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
    let lease_id = field(&form, "lease_id");
    match caller
        .client
        .write("sys/leases/revoke", &json!({ "lease_id": lease_id }))
        .await
    {
        Ok(_) => caller.flash(true, format!("lease {lease_id} revoked")),
        Err(error) => caller.flash(
            false,
            format!("lease {lease_id}: revoke refused: {}", error.message),
        ),
    }
    Redirect::to("/ui/leases").into_response()
}
