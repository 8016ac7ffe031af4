//! Fleet rotation in waves, the pure half: which accounts a selector names, how their hosts
//! are split into a canary wave and the waves after it, and when failures stop a run.
//!
//! Owns the plan's shape and the stop rule, as functions of records and counts (unit-tested
//! without a store or an agent). Must not read the store or rotate anything: `rollout.rs`
//! runs plans through the driver.
//!
//! The unit of a wave is a host: a host's selected accounts rotate together under its lock,
//! children of one parent in one job, exactly as `hosts/:host/rotate` does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::{AccountRecord, HostRecord};

/// Which accounts a bulk rotation takes. Every given part must match; at least one is given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selector {
    /// The host's site, exactly.
    pub site: Option<String>,
    /// A glob over host names (`*` any run of characters, `?` one character).
    pub host: Option<String>,
    /// A glob over account names.
    pub account: Option<String>,
}

/// When a run stops: failures beyond a count, or beyond a percentage of the planned accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Threshold {
    /// Stop once more than this many accounts failed (0: the first failure stops the run).
    Count(u64),
    /// Stop once more than this percentage of the planned accounts failed.
    Percent(u8),
}

impl Threshold {
    /// Parses `3` or `10%`.
    pub fn parse(text: &str) -> Result<Threshold, String> {
        let text = text.trim();
        if let Some(number) = text.strip_suffix('%') {
            return match number.trim().parse::<u8>() {
                Ok(percent) if percent <= 100 => Ok(Threshold::Percent(percent)),
                _ => Err(format!("'{text}' is not a percentage between 0% and 100%")),
            };
        }
        text.parse::<u64>().map(Threshold::Count).map_err(|_| {
            format!(
                "'{text}' is not a count of failed accounts (like 2) or a percentage (like 10%)"
            )
        })
    }

    pub fn describe(self) -> String {
        match self {
            Threshold::Count(count) => count.to_string(),
            Threshold::Percent(percent) => format!("{percent}%"),
        }
    }

    /// The stop rule: have `failed` failures (of `planned` accounts) passed the threshold?
    pub fn exceeded(self, failed: u64, planned: u64) -> bool {
        match self {
            Threshold::Count(count) => failed > count,
            // failed / planned > percent / 100, in integers.
            Threshold::Percent(percent) => {
                failed.saturating_mul(100) > u64::from(percent).saturating_mul(planned)
            }
        }
    }
}

/// How the selected hosts are cut into waves and how fast they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveOptions {
    /// Hosts in the first wave.
    pub canary: usize,
    /// Hosts in each later wave.
    pub wave_size: usize,
    /// Hosts of one site rotating at the same time.
    pub max_parallel_per_site: usize,
    pub failure_threshold: Threshold,
}

impl Default for WaveOptions {
    fn default() -> Self {
        Self {
            canary: 1,
            wave_size: 10,
            max_parallel_per_site: 4,
            failure_threshold: Threshold::Count(0),
        }
    }
}

/// One host of a wave and its selected accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedHost {
    pub host: String,
    /// The site whose agents reach it (`None` for `connection=local` hosts: their own agent).
    pub site: Option<String>,
    pub accounts: Vec<String>,
}

/// The waves, in order; the first is the canary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub waves: Vec<Vec<PlannedHost>>,
}

impl Plan {
    pub fn account_count(&self) -> usize {
        self.waves
            .iter()
            .flatten()
            .map(|host| host.accounts.len())
            .sum()
    }

    pub fn host_count(&self) -> usize {
        self.waves.iter().map(Vec::len).sum()
    }
}

/// Glob matching with `*` (any run, possibly empty) and `?` (exactly one character).
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it currently stands for.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(c) if *c == '?' || *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// Characters other glob dialects give a meaning this matcher does not.
const UNSUPPORTED_GLOB_CHARACTERS: &[char] = &['[', ']', '{', '}', '\\', '!', '^'];

/// Refuses a glob that would not mean what it says here: only `*` and `?` are special, and
/// names never hold whitespace or `/`.
pub fn check_glob(glob: &str) -> Result<(), String> {
    if let Some(found) = glob
        .chars()
        .find(|c| UNSUPPORTED_GLOB_CHARACTERS.contains(c))
    {
        return Err(format!(
            "'{glob}' is not a glob Rotor understands: '{found}' has no meaning here (only * for any run of characters and ? for one character); list the names with several runs, or use a wider glob and check it with dry_run=true"
        ));
    }
    if glob.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(format!(
            "'{glob}' is not a glob Rotor understands: names hold no whitespace or '/'"
        ));
    }
    Ok(())
}

impl Selector {
    /// Refuses a selector that names nothing (it would take the whole mount by accident), and
    /// a glob using syntax this matcher does not have: `web-[12]` would otherwise match no
    /// host at all, silently, instead of the two the operator meant.
    pub fn check(&self) -> Result<(), String> {
        let given = |part: &Option<String>| part.as_deref().is_some_and(|p| !p.trim().is_empty());
        if !(given(&self.site) || given(&self.host) || given(&self.account)) {
            return Err("give at least one of 'site', 'host' (a glob) or 'account' (a glob); to rotate everything say host='*'".into());
        }
        for (field, glob) in [("host", &self.host), ("account", &self.account)] {
            if let Some(glob) = glob {
                check_glob(glob).map_err(|reason| format!("field '{field}': {reason}"))?;
            }
        }
        Ok(())
    }

    fn takes_host(&self, host: &HostRecord) -> bool {
        self.site
            .as_deref()
            .is_none_or(|site| host.site.as_deref() == Some(site))
            && self
                .host
                .as_deref()
                .is_none_or(|glob| glob_matches(glob, &host.name))
    }

    fn takes_account(&self, account: &AccountRecord) -> bool {
        self.account
            .as_deref()
            .is_none_or(|glob| glob_matches(glob, &account.name))
    }
}

/// Builds the plan: the selected accounts grouped by host, hosts ordered by name, the first
/// `canary` hosts as wave one and `wave_size` hosts per wave after it. Hosts with no selected
/// account are left out.
pub fn build_plan(
    selector: &Selector,
    options: &WaveOptions,
    hosts: &[HostRecord],
    accounts: &[AccountRecord],
) -> Plan {
    let mut by_host: BTreeMap<&str, (&HostRecord, Vec<String>)> = hosts
        .iter()
        .filter(|host| selector.takes_host(host))
        .map(|host| (host.name.as_str(), (host, Vec::new())))
        .collect();
    for account in accounts.iter().filter(|a| selector.takes_account(a)) {
        if let Some((_, names)) = by_host.get_mut(account.host.as_str()) {
            names.push(account.name.clone());
        }
    }
    let mut planned: Vec<PlannedHost> = by_host
        .into_values()
        .filter(|(_, names)| !names.is_empty())
        .map(|(host, mut names)| {
            names.sort();
            PlannedHost {
                host: host.name.clone(),
                site: host.site.clone(),
                accounts: names,
            }
        })
        .collect();
    let mut waves = Vec::new();
    let canary = options.canary.max(1).min(planned.len());
    if canary > 0 {
        let rest = planned.split_off(canary);
        waves.push(planned);
        planned = rest;
    }
    let wave_size = options.wave_size.max(1);
    while !planned.is_empty() {
        let rest = planned.split_off(wave_size.min(planned.len()));
        waves.push(planned);
        planned = rest;
    }
    Plan { waves }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::os::model::Connection;

    fn host(name: &str, site: &str) -> HostRecord {
        HostRecord {
            name: name.into(),
            address: "10.0.0.1".into(),
            port: 22,
            ssh_host_key: None,
            trusted_host_key: None,
            site: Some(site.into()),
            connection: Connection::Ssh,
            agent: None,
            chpasswd_command: "/usr/sbin/chpasswd".into(),
            passwd_prompts_json: None,
            created_unix: 0,
            password_policy: None,
        }
    }

    fn account(host: &str, name: &str) -> AccountRecord {
        serde_json::from_value(serde_json::json!({
            "host": host, "name": name, "username": name, "parent_ref": null,
            "verify_connection": true, "disable_automated_rotation": false,
            "rotation_period_secs": null, "rotation_schedule": null, "rotation_window_secs": null,
            "auto_reconcile": false, "current_version": 1, "pending": null, "status": "in_sync",
            "status_detail": null, "last_vault_rotation_unix": null, "last_error": null,
            "failed_attempts": 0, "retry_after_unix": null, "created_unix": 0
        }))
        .expect("account record")
    }

    fn fleet() -> (Vec<HostRecord>, Vec<AccountRecord>) {
        let hosts = vec![
            host("web-3", "a"),
            host("web-1", "a"),
            host("web-2", "b"),
            host("db-1", "a"),
            host("web-4", "a"),
        ];
        let mut accounts = Vec::new();
        for host in &hosts {
            for name in ["mgmt", "app1", "app2"] {
                accounts.push(account(&host.name, name));
            }
        }
        (hosts, accounts)
    }

    fn names(plan: &Plan) -> Vec<Vec<String>> {
        plan.waves
            .iter()
            .map(|wave| wave.iter().map(|h| h.host.clone()).collect())
            .collect()
    }

    #[test]
    fn globs_match_stars_and_question_marks() {
        assert!(glob_matches("web-*", "web-1"));
        assert!(glob_matches("web-*", "web-"));
        assert!(!glob_matches("web-*", "db-1"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("a*b*c", "axxbyyc"));
        assert!(!glob_matches("a*b*c", "axxbyy"));
        assert!(glob_matches("app?", "app1"));
        assert!(!glob_matches("app?", "app12"));
        assert!(glob_matches("exact", "exact"));
        assert!(!glob_matches("exact", "exactly"));
        assert!(glob_matches("*-1", "web-1"));
        assert!(glob_matches("**x", "ax"));
    }

    #[test]
    fn a_selector_must_name_something() {
        assert!(Selector::default().check().is_err());
        let blank = Selector {
            host: Some("  ".into()),
            ..Selector::default()
        };
        assert!(blank.check().is_err());
        let site = Selector {
            site: Some("a".into()),
            ..Selector::default()
        };
        assert!(site.check().is_ok());
    }

    #[test]
    fn globs_with_syntax_the_matcher_lacks_are_refused() {
        for bad in ["web-[12]", "web-{1,2}", "web\\-1", "!web-1", "web 1", "a/b"] {
            let selector = Selector {
                host: Some(bad.into()),
                ..Selector::default()
            };
            let error = selector.check().expect_err(bad);
            assert!(error.starts_with("field 'host': "), "{error}");
            assert!(error.contains(bad), "{error}");
        }
        let account = Selector {
            account: Some("app[0-9]".into()),
            ..Selector::default()
        };
        assert!(
            account
                .check()
                .expect_err("class")
                .contains("field 'account'")
        );
        let fine = Selector {
            host: Some("web-?*".into()),
            account: Some("app_1.x-*".into()),
            ..Selector::default()
        };
        assert!(fine.check().is_ok());
    }

    #[test]
    fn selection_by_site_host_glob_and_account_glob() {
        let (hosts, accounts) = fleet();
        let selector = Selector {
            site: Some("a".into()),
            host: Some("web-*".into()),
            account: Some("app*".into()),
        };
        let plan = build_plan(&selector, &WaveOptions::default(), &hosts, &accounts);
        // web-2 is in site b, db-1 does not match the glob; mgmt does not match app*.
        let all: Vec<&PlannedHost> = plan.waves.iter().flatten().collect();
        assert_eq!(
            all.iter().map(|h| h.host.as_str()).collect::<Vec<_>>(),
            ["web-1", "web-3", "web-4"]
        );
        for planned in all {
            assert_eq!(planned.accounts, ["app1", "app2"]);
            assert_eq!(planned.site.as_deref(), Some("a"));
        }
        assert_eq!(plan.account_count(), 6);
        assert_eq!(plan.host_count(), 3);
    }

    #[test]
    fn hosts_without_selected_accounts_are_left_out() {
        let (hosts, mut accounts) = fleet();
        accounts.retain(|a| a.host != "web-1" || a.name == "mgmt");
        let selector = Selector {
            account: Some("app1".into()),
            ..Selector::default()
        };
        let plan = build_plan(&selector, &WaveOptions::default(), &hosts, &accounts);
        assert!(
            !plan
                .waves
                .iter()
                .flatten()
                .any(|planned| planned.host == "web-1")
        );
        assert_eq!(plan.account_count(), 4);
    }

    #[test]
    fn canary_first_then_waves_of_wave_size() {
        let (hosts, accounts) = fleet();
        let selector = Selector {
            host: Some("*".into()),
            ..Selector::default()
        };
        let options = WaveOptions {
            canary: 1,
            wave_size: 2,
            ..WaveOptions::default()
        };
        let plan = build_plan(&selector, &options, &hosts, &accounts);
        assert_eq!(
            names(&plan),
            [vec!["db-1"], vec!["web-1", "web-2"], vec!["web-3", "web-4"]]
        );
        let options = WaveOptions {
            canary: 2,
            wave_size: 10,
            ..WaveOptions::default()
        };
        let plan = build_plan(&selector, &options, &hosts, &accounts);
        assert_eq!(
            names(&plan),
            [vec!["db-1", "web-1"], vec!["web-2", "web-3", "web-4"]]
        );
        // A canary of 0 still means one host first; one larger than the fleet takes it all.
        let options = WaveOptions {
            canary: 0,
            ..WaveOptions::default()
        };
        assert_eq!(
            build_plan(&selector, &options, &hosts, &accounts).waves[0].len(),
            1
        );
        let options = WaveOptions {
            canary: 50,
            ..WaveOptions::default()
        };
        assert_eq!(
            names(&build_plan(&selector, &options, &hosts, &accounts)).len(),
            1
        );
    }

    #[test]
    fn nothing_selected_is_an_empty_plan() {
        let (hosts, accounts) = fleet();
        let selector = Selector {
            host: Some("nothing-*".into()),
            ..Selector::default()
        };
        let plan = build_plan(&selector, &WaveOptions::default(), &hosts, &accounts);
        assert!(plan.waves.is_empty());
        assert_eq!(plan.account_count(), 0);
    }

    #[test]
    fn thresholds_parse_counts_and_percentages() {
        assert_eq!(Threshold::parse("3"), Ok(Threshold::Count(3)));
        assert_eq!(Threshold::parse(" 10% "), Ok(Threshold::Percent(10)));
        assert!(Threshold::parse("101%").is_err());
        assert!(Threshold::parse("-1").is_err());
        assert!(Threshold::parse("ten").is_err());
        assert_eq!(Threshold::Percent(25).describe(), "25%");
    }

    #[test]
    fn the_stop_rule_fires_only_past_the_threshold() {
        let zero = Threshold::Count(0);
        assert!(!zero.exceeded(0, 10));
        assert!(zero.exceeded(1, 10));
        let one = Threshold::Count(1);
        assert!(!one.exceeded(1, 10));
        assert!(one.exceeded(2, 10));
        let percent = Threshold::Percent(20);
        // 2 of 10 is 20%: not past it; 3 of 10 is.
        assert!(!percent.exceeded(2, 10));
        assert!(percent.exceeded(3, 10));
        assert!(Threshold::Percent(0).exceeded(1, 1000));
        assert!(!Threshold::Percent(100).exceeded(10, 10));
    }
}
