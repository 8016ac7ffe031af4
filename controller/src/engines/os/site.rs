//! Which site a host belongs to when its write names none, as the reference's commands
//! (`write os/hosts/my-box address=... port=22`) leave it out: the engine's `default_site`,
//! else the only site that has enrolled agents, else [`DEFAULT_SITE`], which agents join when
//! enrolled without a site.
//!
//! Resolved once, when the host is written, and stored in the host record: a read shows the
//! site, and enrolling agents later never moves a host. Pure: the caller passes the configured
//! default and the sites that have agents. Must not read the store.

/// The site of hosts and agents that name none, when nothing else decides.
pub const DEFAULT_SITE: &str = "default";

/// How a host's site was chosen when its write did not name one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteChoice {
    /// `os/config default_site`.
    Configured(String),
    /// Every enrolled (not revoked) agent is in this one site.
    OnlySiteWithAgents(String),
    /// No default configured and no single site with agents: [`DEFAULT_SITE`].
    Default {
        /// The sites that do have agents (none, or several), sorted.
        sites_with_agents: Vec<String>,
    },
}

impl SiteChoice {
    /// The site chosen.
    pub fn site(&self) -> &str {
        match self {
            SiteChoice::Configured(site) | SiteChoice::OnlySiteWithAgents(site) => site,
            SiteChoice::Default { .. } => DEFAULT_SITE,
        }
    }

    /// What the write answers when the chosen site has no agent yet: the host is saved, and
    /// its first contact will fail until an agent joins that site or the host moves.
    pub fn warning(&self, mount: &str, host: &str) -> Option<String> {
        let SiteChoice::Default { sites_with_agents } = self else {
            return None;
        };
        if sites_with_agents.iter().any(|site| site == DEFAULT_SITE) {
            return None;
        }
        let why = if sites_with_agents.is_empty() {
            "no agent is enrolled yet".to_string()
        } else {
            format!(
                "agents are enrolled in several sites ({}), so none was picked",
                sites_with_agents.join(", ")
            )
        };
        Some(format!(
            "field 'site' not given: host {host} is in site '{DEFAULT_SITE}' ({why}); enroll an agent there (rotor write -f agents/enroll, without site), or name the site (rotor write {mount}hosts/{host} site=SITE, or rotor write {mount}config default_site=SITE for new hosts)"
        ))
    }
}

/// The site of a host written without one. `sites_with_agents` are the sites of enrolled,
/// not revoked, agents (any order, repeats allowed).
pub fn choose_site(configured: Option<&str>, sites_with_agents: &[String]) -> SiteChoice {
    if let Some(site) = configured.filter(|site| !site.is_empty()) {
        return SiteChoice::Configured(site.to_string());
    }
    let mut sites: Vec<String> = sites_with_agents.to_vec();
    sites.sort();
    sites.dedup();
    match sites.as_slice() {
        [only] => SiteChoice::OnlySiteWithAgents(only.clone()),
        _ => SiteChoice::Default {
            sites_with_agents: sites,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sites(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn the_configured_default_wins_over_agents() {
        let choice = choose_site(Some("dc2"), &sites(&["dc1"]));
        assert_eq!(choice, SiteChoice::Configured("dc2".into()));
        assert_eq!(choice.site(), "dc2");
        assert_eq!(choice.warning("os/", "web"), None);
    }

    #[test]
    fn the_only_site_with_agents_is_chosen_however_many_agents_it_has() {
        let choice = choose_site(None, &sites(&["dc1", "dc1", "dc1"]));
        assert_eq!(choice, SiteChoice::OnlySiteWithAgents("dc1".into()));
        assert_eq!(choice.warning("os/", "web"), None);
        // An empty configured default is no default.
        assert_eq!(choice_site_of(Some(""), &["dc1"]), "dc1");
    }

    fn choice_site_of(configured: Option<&str>, agents: &[&str]) -> String {
        choose_site(configured, &sites(agents)).site().to_string()
    }

    #[test]
    fn no_agents_or_several_sites_fall_back_to_default_with_a_warning() {
        let none = choose_site(None, &[]);
        assert_eq!(none.site(), DEFAULT_SITE);
        let warning = none.warning("os/", "my-box").expect("a warning");
        assert!(
            warning.contains("host my-box is in site 'default'"),
            "{warning}"
        );
        assert!(warning.contains("no agent is enrolled yet"), "{warning}");
        assert!(
            warning.contains("rotor write -f agents/enroll"),
            "{warning}"
        );

        let several = choose_site(None, &sites(&["b", "a", "b"]));
        assert_eq!(several.site(), DEFAULT_SITE);
        let warning = several.warning("team/os/", "my-box").expect("a warning");
        assert!(warning.contains("several sites (a, b)"), "{warning}");
        assert!(
            warning.contains("rotor write team/os/config default_site=SITE"),
            "{warning}"
        );

        // Agents in `default` itself: the host is served there, nothing to warn about.
        let with_default = choose_site(None, &sites(&["a", "default"]));
        assert_eq!(with_default.site(), DEFAULT_SITE);
        assert_eq!(with_default.warning("os/", "my-box"), None);
    }
}
