//! Sign-in with a token and sign-out.
//!
//! The sign-in form belongs to a session without a token (so it has a CSRF token too); a
//! token the API accepts (`auth/token/lookup-self`) starts a new session with a new id, and
//! the token never goes back to the browser.

use std::collections::HashMap;
use std::time::Instant;

use axum::Form;
use axum::extract::State;
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::field;
use crate::tokens::ClientToken;
use crate::ui::client::ApiClient;
use crate::ui::layout::{self, Section};
use crate::ui::session::{self, SessionView};
use crate::ui::{UiState, csrf_refusal, html_response, remote_of};

fn cookie_session(ui: &UiState, headers: &HeaderMap) -> Option<SessionView> {
    let id = headers
        .get(header::COOKIE)
        .and_then(|value| value.to_str().ok())
        .and_then(session::session_id_from_cookies)?;
    ui.sessions.touch(id, Instant::now())
}

fn with_cookie(mut response: Response, id: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(&session::set_cookie(id)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

fn render(session: &SessionView, error: Option<&str>) -> Response {
    let markup = layout::page(
        "Sign in",
        Section::SignIn,
        None,
        None,
        html! {
            h1 { "Sign in to Rotor" }
            @if let Some(error) = error {
                p.flash.error #sign-in-error role="alert" { (error) }
            }
            form.card #sign-in method="post" action="/ui/login" {
                input type="hidden" name="csrf" value=(session.csrf);
                label for="token" { "Token" }
                input type="password" id="token" name="token" autocomplete="off" required autofocus;
                p.hint { "The same token the API and the rotor CLI take. It stays on the server; the browser keeps only a session cookie." }
                button type="submit" #sign-in-button { "Sign in" }
            }
        },
    );
    with_cookie(html_response(markup), &session.id)
}

/// `GET /ui/login`: the form (or the overview when already signed in).
pub async fn form(State(ui): State<UiState>, headers: HeaderMap) -> Response {
    let session = match cookie_session(&ui, &headers) {
        Some(session) if session.token.is_some() => return Redirect::to("/ui/").into_response(),
        Some(session) => session,
        None => ui.sessions.open(Instant::now()),
    };
    render(&session, None)
}

/// `POST /ui/login`: checks the token with the API and starts a signed-in session.
pub async fn submit(
    State(ui): State<UiState>,
    headers: HeaderMap,
    extensions: Extensions,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(session) = cookie_session(&ui, &headers) else {
        // No session (cookies off, or it expired): start over with a fresh form.
        let fresh = ui.sessions.open(Instant::now());
        return render(&fresh, Some("Your sign-in form expired; sign in again."));
    };
    if let Some(refused) = csrf_refusal(&session, form.get("csrf")) {
        return refused;
    }
    let token = field(&form, "token");
    if token.is_empty() {
        return render(&session, Some("Enter a token."));
    }
    let client = ApiClient::new(
        ui.api.clone(),
        ClientToken::new(token.clone()),
        remote_of(&extensions),
    );
    match client.read("auth/token/lookup-self").await {
        Ok(found)
            if found
                .get("num_uses")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0)
                > 0 =>
        {
            // Every page is several API reads, each counted: such a token would be spent (and
            // revoked) within a page or two.
            render(
                &session,
                Some(
                    "That token is limited to a number of uses; each console page spends several. Sign in with a token without num_uses.",
                ),
            )
        }
        Ok(_) => {
            let signed = ui
                .sessions
                .sign_in(&session.id, ClientToken::new(token), Instant::now());
            with_cookie(Redirect::to("/ui/").into_response(), &signed.id)
        }
        Err(error) if error.status == StatusCode::FORBIDDEN => render(
            &session,
            Some("That token was not accepted (unknown, expired or revoked)."),
        ),
        Err(error) => render(&session, Some(&error.message)),
    }
}

/// `POST /ui/logout`: ends the session (the token itself stays valid: it is the operator's).
pub async fn sign_out(
    State(ui): State<UiState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(session) = cookie_session(&ui, &headers) {
        if let Some(refused) = csrf_refusal(&session, form.get("csrf")) {
            return refused;
        }
        ui.sessions.sign_out(&session.id);
    }
    let mut response = Redirect::to("/ui/login").into_response();
    if let Ok(value) = HeaderValue::from_str(&session::clear_cookie()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}
