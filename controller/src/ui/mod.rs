//! The web console at `/ui/` on the API's HTTPS listener: server-rendered pages (maud), one
//! small script and one stylesheet embedded in the binary, sign-in with a token.
//!
//! Owns the console's routes, its sessions (`session.rs`) and the security headers of every
//! `/ui/` answer (a strict Content-Security-Policy: no inline script or style, nothing from
//! elsewhere; no framing; no sniffing; no referrer; no caching). The console is a client of
//! the `/v1/` API: every read and action is an in-process API request with the session's
//! token (`client.rs` → `api::call_as`), so it passes the same ACL and audit as curl would.
//! **Invariant:** nothing under `ui/` reads or writes the store; a page shows only what the
//! signed-in token's policies let the API answer.

pub mod client;
pub mod fleet;
pub mod layout;
pub mod pages;
pub mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::connect_info::ConnectInfo;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use maud::Markup;

use crate::api::AppState;
use client::ApiClient;
use layout::Identity;
use session::{Flash, SessionStore, SessionView};

/// The console's state: the API's services and the sessions.
#[derive(Clone)]
pub struct UiState {
    pub api: AppState,
    pub sessions: Arc<SessionStore>,
}

/// The Content-Security-Policy of every `/ui/` answer: scripts, styles, images and fetches
/// only from this origin, and no inline script or style (no `'unsafe-inline'`), forms post
/// only here, no framing, no `<base>`, no plugins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

const CONSOLE_CSS: &str = include_str!("assets/console.css");
const CONSOLE_JS: &str = include_str!("assets/console.js");

/// The console's routes, to merge into the API's router (the `/v1/` fallback stays).
pub fn router(api: AppState) -> Router {
    let state = UiState {
        api,
        sessions: Arc::new(SessionStore::new()),
    };
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(pages::overview::show))
        .route(
            "/ui/login",
            get(pages::login::form).post(pages::login::submit),
        )
        .route("/ui/logout", post(pages::login::sign_out))
        .route("/ui/static/console.css", get(stylesheet))
        .route("/ui/static/console.js", get(script))
        .route("/ui/accounts", get(pages::accounts::browse))
        .route(
            "/ui/hosts/{host}/accounts/{account}",
            get(pages::account::show),
        )
        .route(
            "/ui/hosts/{host}/accounts/{account}/action",
            post(pages::account::act),
        )
        .route(
            "/ui/hosts/{host}/accounts/{account}/reveal",
            post(pages::account::reveal),
        )
        .route("/ui/rotations", get(pages::rotations::index))
        .route("/ui/rotations/plan", post(pages::rotations::plan))
        .route("/ui/rotations/start", post(pages::rotations::start))
        .route("/ui/rotations/{id}", get(pages::rotations::show))
        .route(
            "/ui/rotations/{id}/progress",
            get(pages::rotations::progress),
        )
        .route("/ui/rotations/{id}/stop", post(pages::rotations::stop))
        .route("/ui/leases", get(pages::leases::index))
        .route("/ui/leases/revoke", post(pages::leases::revoke))
        // Any other /ui/ path, whatever the method, is the console's 404 (with its headers),
        // never the API's.
        .route("/ui/{*rest}", any(not_found))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// Adds the console's security headers to an answer.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: header::HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY,
    );
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::CACHE_CONTROL, "no-store");
    set(
        headers,
        header::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    response
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        CONSOLE_CSS,
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        CONSOLE_JS,
    )
        .into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(
            layout::page(
                "Not found",
                layout::Section::SignIn,
                None,
                None,
                maud::html! { h1 { "Not found" } p { a href="/ui/" { "Back to the overview" } } },
            )
            .into_string(),
        ),
    )
        .into_response()
}

/// An HTML answer from a page's markup.
pub fn html_response(markup: Markup) -> Response {
    Html(markup.into_string()).into_response()
}

/// A signed-in caller: its session, an API client holding its token, and who it is.
pub struct Caller {
    pub session: SessionView,
    pub client: ApiClient,
    pub identity: Identity,
    pub ui: UiState,
}

impl Caller {
    /// Leaves a message for the next page.
    pub fn flash(&self, ok: bool, message: impl Into<String>) {
        self.ui.sessions.set_flash(
            &self.session.id,
            Flash {
                ok,
                message: message.into(),
            },
        );
    }
}

/// The browser's address, for the audit log's `remote_address`.
pub fn remote_of(extensions: &axum::http::Extensions) -> Option<String> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip().to_string())
}

/// The signed-in caller, or the answer that sends the browser to sign in: no session, an
/// expired one, or a token the API no longer accepts (then the session is ended too).
pub async fn signed_in(
    ui: &UiState,
    headers: &HeaderMap,
    remote: Option<String>,
) -> Result<Caller, Response> {
    let to_sign_in = || Redirect::to("/ui/login").into_response();
    let id = headers
        .get(header::COOKIE)
        .and_then(|value| value.to_str().ok())
        .and_then(session::session_id_from_cookies)
        .ok_or_else(to_sign_in)?;
    let session = ui
        .sessions
        .touch(id, Instant::now())
        .ok_or_else(to_sign_in)?;
    let Some(token) = session.token.as_ref() else {
        return Err(to_sign_in());
    };
    let client = ApiClient::new(ui.api.clone(), token.to_client_token(), remote);
    let identity = match client.read("auth/token/lookup-self").await {
        Ok(data) => Identity {
            display_name: client::text(&data, "display_name"),
            policies: data
                .get("policies")
                .and_then(serde_json::Value::as_array)
                .map(|list| {
                    list.iter()
                        .filter_map(|p| p.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
        },
        Err(error) if error.status == StatusCode::FORBIDDEN => {
            ui.sessions.sign_out(&session.id);
            return Err(to_sign_in());
        }
        Err(_) => Identity::default(),
    };
    Ok(Caller {
        session,
        client,
        identity,
        ui: ui.clone(),
    })
}

/// The refusal of a POSTed form that does not carry the session's CSRF token (a 403 page),
/// or `None` when it does.
pub fn csrf_refusal(session: &SessionView, submitted: Option<&String>) -> Option<Response> {
    if submitted.is_some_and(|value| session::csrf_matches(&session.csrf, value)) {
        return None;
    }
    let page = layout::page(
        "Refused",
        layout::Section::SignIn,
        None,
        None,
        maud::html! {
            h1 { "Refused" }
            p #csrf-refused { "This form was not sent from this console session (missing or wrong CSRF token). Reload the page and try again." }
            p { a href="/ui/" { "Back to the overview" } }
        },
    );
    Some((StatusCode::FORBIDDEN, Html(page.into_string())).into_response())
}

#[cfg(test)]
mod tests;
