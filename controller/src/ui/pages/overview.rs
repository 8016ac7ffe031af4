//! The fleet overview: accounts by status per site, the accounts that need attention first
//! (out of sync, with the reason and a reconcile button), agents per site with last seen,
//! jobs in flight and queued per site, leases per engine. Each block says so when the token
//! may not read what it needs.

use axum::extract::State;
use axum::http::{Extensions, HeaderMap};
use axum::response::Response;
use maud::{Markup, html};

use super::error_page;
use crate::ui::fleet::{self, AccountRow, AgentRow, LeaseRow, STATUSES};
use crate::ui::layout::{self, Section, action_form, status_badge};
use crate::ui::{Caller, UiState, html_response, remote_of, signed_in};

/// `GET /ui/`.
pub async fn show(
    State(ui): State<UiState>,
    headers: HeaderMap,
    extensions: Extensions,
) -> Response {
    let caller = match signed_in(&ui, &headers, remote_of(&extensions)).await {
        Ok(caller) => caller,
        Err(redirect) => return redirect,
    };
    let loaded = async {
        let fleet = fleet::load(&caller.client).await?;
        let agents = fleet::agents(&caller.client).await?;
        let jobs = fleet::jobs(&caller.client).await?;
        let leases = fleet::leases(&caller.client).await?;
        Ok::<_, crate::api::ApiError>((fleet, agents, jobs, leases))
    }
    .await;
    let (mut fleet, agents, jobs, leases) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => return error_page(&caller, Section::Overview, &error),
    };
    fleet::sort_for_attention(&mut fleet.accounts);
    let content = html! {
        h1 { "Fleet overview" }
        (status_table(&fleet))
        (attention(&caller, &fleet.accounts))
        div.columns {
            (agents_block(agents.as_deref()))
            (jobs_block(jobs.as_ref()))
            (leases_block(leases.as_deref()))
        }
    };
    html_response(layout::page(
        "Overview",
        Section::Overview,
        Some((&caller.identity, &caller.session.csrf)),
        caller.session.flash.as_ref(),
        content,
    ))
}

fn status_table(fleet: &fleet::Fleet) -> Markup {
    if !fleet.hosts_visible {
        return html! { section { h2 { "Accounts" } p.denied { "This token may not list hosts (os/hosts)." } } };
    }
    let counts = fleet::counts_by_site(&fleet.accounts);
    let total = |status: &str| -> usize {
        counts
            .values()
            .map(|site| site.get(status).copied().unwrap_or(0))
            .sum()
    };
    let hidden_total = total("hidden");
    html! {
        section aria-labelledby="accounts-heading" {
            h2 #accounts-heading { "Accounts by status" }
            table.counts #status-counts {
                caption { (fleet.accounts.len()) " accounts on " (fleet.hosts.len()) " hosts" }
                thead { tr {
                    th scope="col" { "Site" }
                    @for status in STATUSES { th scope="col" { (status_badge(status)) } }
                    @if hidden_total > 0 { th scope="col" { (status_badge("hidden")) } }
                } }
                tbody {
                    @for (site, by_status) in &counts {
                        tr {
                            th scope="row" { (site) }
                            @for status in STATUSES {
                                td id={ "count-" (site) "-" (status) } {
                                    a href={ "/ui/accounts?site=" (site) "&status=" (status) } {
                                        (by_status.get(status).copied().unwrap_or(0))
                                    }
                                }
                            }
                            @if hidden_total > 0 { td { (by_status.get("hidden").copied().unwrap_or(0)) } }
                        }
                    }
                }
                tfoot { tr {
                    th scope="row" { "All sites" }
                    @for status in STATUSES { td id={ "count-all-" (status) } { (total(status)) } }
                    @if hidden_total > 0 { td #count-all-hidden { (hidden_total) } }
                } }
            }
        }
    }
}

fn attention(caller: &Caller, accounts: &[AccountRow]) -> Markup {
    let needing: Vec<&AccountRow> = accounts
        .iter()
        .filter(|a| a.status == "out_of_sync" || a.status == "rotation_failing")
        .collect();
    html! {
        section aria-labelledby="attention-heading" {
            h2 #attention-heading { "Needs attention" }
            @if needing.is_empty() {
                p #attention-none { "No account is out of sync or failing to rotate." }
            } @else {
                table #attention {
                    thead { tr {
                        th scope="col" { "Account" } th scope="col" { "Site" }
                        th scope="col" { "Status" } th scope="col" { "Reason" } th scope="col" { "Action" }
                    } }
                    tbody {
                        @for account in needing {
                            tr.attention-row data-host=(account.host) data-account=(account.account) {
                                td { a href={ "/ui/hosts/" (account.host) "/accounts/" (account.account) } {
                                    (account.host) " / " (account.account) } }
                                td { (account.site) }
                                td { (status_badge(&account.status)) }
                                td.reason { (account.reason) }
                                td {
                                    @if account.parent_ref.is_empty() {
                                        (action_form(
                                            &format!("/ui/hosts/{}/accounts/{}/action", account.host, account.account),
                                            &caller.session.csrf,
                                            &[("action", "verify"), ("return", "/ui/")],
                                            &format!("verify-{}-{}", account.host, account.account),
                                            "Verify",
                                        ))
                                    } @else {
                                        (action_form(
                                            &format!("/ui/hosts/{}/accounts/{}/action", account.host, account.account),
                                            &caller.session.csrf,
                                            &[("action", "reconcile"), ("return", "/ui/")],
                                            &format!("reconcile-{}-{}", account.host, account.account),
                                            "Reconcile",
                                        ))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn agents_block(agents: Option<&[AgentRow]>) -> Markup {
    html! {
        section aria-labelledby="agents-heading" {
            h2 #agents-heading { "Agents" }
            @match agents {
                None => p.denied { "This token may not list agents." },
                Some([]) => p { "No agent is enrolled." },
                Some(agents) => {
                    ul.summary {
                        @let connected = agents.iter().filter(|a| a.connected).count();
                        li #agents-connected { (connected) " connected" }
                        li #agents-disconnected { (agents.len() - connected) " disconnected" }
                    }
                    table #agents-per-site {
                        thead { tr { th scope="col" { "Site" } th scope="col" { "Connected" } th scope="col" { "Disconnected" } } }
                        tbody {
                            @for (site, (up, down)) in &per_site(agents) {
                                tr { td { (site) } td id={ "agents-up-" (site) } { (up) } td id={ "agents-down-" (site) } { (down) } }
                            }
                        }
                    }
                    table #agents {
                        thead { tr { th scope="col" { "Site" } th scope="col" { "Agent" } th scope="col" { "State" } th scope="col" { "Last seen" } } }
                        tbody {
                            @for agent in agents {
                                tr {
                                    td { (agent.site) }
                                    td { code { (agent.id) } }
                                    td { @if agent.connected { span.badge.status-in_sync { "connected" } } @else { span.badge.status-out_of_sync { "disconnected" } } }
                                    td { (agent.last_seen) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Connected and disconnected agents per site.
fn per_site(agents: &[AgentRow]) -> std::collections::BTreeMap<&str, (usize, usize)> {
    let mut sites = std::collections::BTreeMap::new();
    for agent in agents {
        let entry: &mut (usize, usize) = sites.entry(agent.site.as_str()).or_default();
        if agent.connected {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }
    sites
}

fn jobs_block(jobs: Option<&std::collections::BTreeMap<String, (u64, u64)>>) -> Markup {
    html! {
        section aria-labelledby="jobs-heading" {
            h2 #jobs-heading { "Jobs" }
            @match jobs {
                None => p.denied { "This token may not read sys/metrics." },
                Some(jobs) if jobs.is_empty() => p { "No site has jobs." },
                Some(jobs) => table #jobs {
                    thead { tr { th scope="col" { "Site" } th scope="col" { "In flight" } th scope="col" { "Queued" } } }
                    tbody { @for (site, (in_flight, queued)) in jobs {
                        tr { td { (site) } td { (in_flight) } td { (queued) } }
                    } }
                },
            }
        }
    }
}

fn leases_block(leases: Option<&[LeaseRow]>) -> Markup {
    html! {
        section aria-labelledby="leases-heading" {
            h2 #leases-heading { "Leases" }
            @match leases {
                None => p.denied { "This token may not list leases (sys/leases/lookup needs sudo)." },
                Some(leases) => {
                    @let by_engine = fleet::leases_by_engine(leases);
                    @if by_engine.is_empty() { p #leases-none { "No lease is outstanding." } }
                    @else {
                        table #leases-by-engine {
                            thead { tr { th scope="col" { "Engine" } th scope="col" { "Leases" } } }
                            tbody { @for (engine, count) in &by_engine { tr { td { (engine) } td { (count) } } } }
                        }
                    }
                    p { a href="/ui/leases" { "All leases" } }
                }
            }
        }
    }
}
