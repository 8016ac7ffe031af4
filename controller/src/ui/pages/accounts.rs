//! Hosts and accounts: browse the fleet, search by name, site and status.

use std::collections::BTreeSet;

use axum::extract::{Query, State};
use axum::http::{Extensions, HeaderMap};
use axum::response::Response;
use maud::html;

use super::error_page;
use crate::ui::fleet::{self, Filter, STATUSES};
use crate::ui::layout::{self, Section, status_badge};
use crate::ui::{UiState, html_response, remote_of, signed_in};

/// `GET /ui/accounts?q=&site=&status=`.
pub async fn browse(
    State(ui): State<UiState>,
    headers: HeaderMap,
    extensions: Extensions,
    Query(filter): Query<Filter>,
) -> Response {
    let caller = match signed_in(&ui, &headers, remote_of(&extensions)).await {
        Ok(caller) => caller,
        Err(redirect) => return redirect,
    };
    let mut fleet = match fleet::load(&caller.client).await {
        Ok(fleet) => fleet,
        Err(error) => return error_page(&caller, Section::Accounts, &error),
    };
    fleet::sort_for_attention(&mut fleet.accounts);
    let sites: BTreeSet<&str> = fleet.hosts.iter().map(|h| h.site.as_str()).collect();
    let shown: Vec<&fleet::AccountRow> = fleet
        .accounts
        .iter()
        .filter(|a| filter.matches(a))
        .collect();
    let hosts: Vec<&fleet::HostRow> = fleet
        .hosts
        .iter()
        .filter(|h| {
            (filter.site.is_empty() || h.site == filter.site)
                && (filter.q.is_empty()
                    || h.host
                        .to_ascii_lowercase()
                        .contains(&filter.q.trim().to_ascii_lowercase())
                    || shown.iter().any(|a| a.host == h.host))
        })
        .collect();
    let content = html! {
        h1 { "Hosts & accounts" }
        form.card.search #search method="get" action="/ui/accounts" role="search" {
            div.field {
                label for="q" { "Name contains" }
                input type="search" id="q" name="q" value=(filter.q);
            }
            div.field {
                label for="site" { "Site" }
                select id="site" name="site" {
                    option value="" { "any" }
                    @for site in &sites {
                        option value=(site) selected[*site == filter.site] { (site) }
                    }
                }
            }
            div.field {
                label for="status" { "Status" }
                select id="status" name="status" {
                    option value="" { "any" }
                    @for status in STATUSES.iter().chain(["hidden"].iter()) {
                        option value=(status) selected[*status == filter.status] { (status.replace('_', " ")) }
                    }
                }
            }
            button type="submit" #search-button { "Search" }
        }
        @if !fleet.hosts_visible {
            p.denied { "This token may not list hosts (os/hosts)." }
        } @else {
            h2 { "Accounts (" (shown.len()) ")" }
            table #accounts {
                thead { tr {
                    th scope="col" { "Host" } th scope="col" { "Account" } th scope="col" { "Site" }
                    th scope="col" { "Status" } th scope="col" { "Next rotation" } th scope="col" { "Reason" }
                } }
                tbody {
                    @for account in &shown {
                        tr.account-row data-host=(account.host) data-account=(account.account) data-status=(account.status) {
                            td { (account.host) }
                            td { a href={ "/ui/hosts/" (account.host) "/accounts/" (account.account) } { (account.account) } }
                            td { (account.site) }
                            td { (status_badge(&account.status)) }
                            td { (account.next_rotation) }
                            td.reason { (account.reason) }
                        }
                    }
                }
            }
            h2 { "Hosts (" (hosts.len()) ")" }
            table #hosts {
                thead { tr { th scope="col" { "Host" } th scope="col" { "Site" } th scope="col" { "Address" } th scope="col" { "Accounts" } } }
                tbody {
                    @for host in &hosts {
                        tr {
                            td { a href={ "/ui/accounts?q=" (host.host) } { (host.host) } }
                            td { (host.site) }
                            td { (host.address) }
                            td { @match host.accounts { Some(n) => (n), None => "not readable" } }
                        }
                    }
                }
            }
        }
    };
    html_response(layout::page(
        "Hosts & accounts",
        Section::Accounts,
        Some((&caller.identity, &caller.session.csrf)),
        caller.session.flash.as_ref(),
        content,
    ))
}
