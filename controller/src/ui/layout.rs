//! The page shell every console page shares: head (one stylesheet, one script, both from
//! `/ui/static/`), the navigation, who is signed in, the sign-out form and the flash message.
//!
//! Owns the HTML around a page's content. Every value reaches the page through maud's
//! escaping (`(value)`); nothing here or in any page uses `PreEscaped` on data.

use maud::{DOCTYPE, Markup, html};

use super::session::Flash;

/// Who is signed in, as the token's own lookup says.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub display_name: String,
    pub policies: Vec<String>,
}

/// Which navigation entry is the current page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Accounts,
    Rotations,
    Leases,
    SignIn,
}

const NAVIGATION: [(Section, &str, &str); 4] = [
    (Section::Overview, "/ui/", "Overview"),
    (Section::Accounts, "/ui/accounts", "Hosts & accounts"),
    (Section::Rotations, "/ui/rotations", "Fleet rotations"),
    (Section::Leases, "/ui/leases", "Leases"),
];

/// A whole page. `identity` and `csrf` are `None` on the sign-in page.
pub fn page(
    title: &str,
    section: Section,
    identity: Option<(&Identity, &str)>,
    flash: Option<&Flash>,
    content: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Rotor" }
                link rel="stylesheet" href="/ui/static/console.css";
                script src="/ui/static/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "Rotor" }
                    @if let Some((identity, csrf)) = identity {
                        nav aria-label="Main" {
                            ul {
                                @for (entry, href, label) in NAVIGATION {
                                    li {
                                        @if entry == section {
                                            a href=(href) aria-current="page" { (label) }
                                        } @else {
                                            a href=(href) { (label) }
                                        }
                                    }
                                }
                            }
                        }
                        div.who {
                            span #signed-in-as { "Signed in as " strong { (identity.display_name) } }
                            span.policies #signed-in-policies {
                                " (policies: " (identity.policies.join(", ")) ")"
                            }
                            form.inline method="post" action="/ui/logout" {
                                input type="hidden" name="csrf" value=(csrf);
                                button type="submit" #sign-out { "Sign out" }
                            }
                        }
                    }
                }
                main #main {
                    @if let Some(flash) = flash {
                        @if flash.ok {
                            p.flash.ok #flash role="status" { (flash.message) }
                        } @else {
                            p.flash.error #flash role="alert" { (flash.message) }
                        }
                    }
                    (content)
                }
            }
        }
    }
}

/// A status as a labelled badge (text, never colour alone).
pub fn status_badge(status: &str) -> Markup {
    let label = match status {
        "in_sync" => "in sync",
        "out_of_sync" => "out of sync",
        "rotation_failing" => "rotation failing",
        "rotating" => "rotating",
        "verifying" => "verifying",
        "hidden" => "not readable",
        other => other,
    };
    html! { span class={ "badge status-" (status) } { (label) } }
}

/// A POST form with the session's CSRF token, hidden fields and one button.
pub fn action_form(
    action: &str,
    csrf: &str,
    hidden: &[(&str, &str)],
    button_id: &str,
    label: &str,
) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            input type="hidden" name="csrf" value=(csrf);
            @for (name, value) in hidden {
                input type="hidden" name=(name) value=(value);
            }
            button type="submit" id=(button_id) { (label) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAYLOAD: &str = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>";

    #[test]
    fn every_value_in_the_shell_is_escaped() {
        let identity = Identity {
            display_name: PAYLOAD.into(),
            policies: vec![PAYLOAD.into()],
        };
        let flash = Flash {
            ok: false,
            message: PAYLOAD.into(),
        };
        let html = page(
            PAYLOAD,
            Section::Overview,
            Some((&identity, PAYLOAD)),
            Some(&flash),
            html! { p { (PAYLOAD) } },
        )
        .into_string();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        // In an attribute (the CSRF value) the quote cannot close it.
        assert!(!html.contains("value=\"<script>"), "{html}");
        assert!(html.contains("&quot;"), "{html}");
    }

    #[test]
    fn no_inline_script_or_style_in_the_shell() {
        let html = page(
            "t",
            Section::Overview,
            Some((&Identity::default(), "c")),
            None,
            html! {},
        )
        .into_string();
        assert!(html.contains("<script src=\"/ui/static/console.js\" defer></script>"));
        assert!(!html.contains("<style"), "{html}");
        assert!(!html.contains("style="), "{html}");
        for handler in [" onclick", " onload", " onerror", " onsubmit"] {
            assert!(
                !html.contains(handler),
                "no event handler attributes: {html}"
            );
        }
    }

    #[test]
    fn status_badges_carry_words() {
        let html = status_badge("out_of_sync").into_string();
        assert!(html.contains("out of sync"), "{html}");
        assert!(html.contains("status-out_of_sync"), "{html}");
    }
}
