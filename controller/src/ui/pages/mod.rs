//! The console's pages, one file per page group. Each handler signs the caller in
//! (`ui::signed_in`), reads through the API client, and renders with maud; POST handlers check
//! the CSRF token first, act through the API, leave a flash and redirect (303), so a reload
//! never repeats an action.

pub mod account;
pub mod accounts;
pub mod leases;
pub mod login;
pub mod overview;
pub mod rotations;

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

use super::layout::{self, Section};
use super::{Caller, html_response};
use crate::api::ApiError;

/// A page that could not be built: the API's error, shown as text.
pub fn error_page(caller: &Caller, section: Section, error: &ApiError) -> Response {
    let status = if error.status == StatusCode::FORBIDDEN {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::OK
    };
    let markup = layout::page(
        "Error",
        section,
        Some((&caller.identity, &caller.session.csrf)),
        None,
        html! {
            h1 { "The API refused" }
            p.flash.error #api-error role="alert" { (error.message) " (" (error.status.as_u16()) ")" }
        },
    );
    (status, html_response(markup)).into_response()
}

/// A form field, trimmed ("" when absent).
pub fn field(form: &HashMap<String, String>, name: &str) -> String {
    form.get(name)
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}
