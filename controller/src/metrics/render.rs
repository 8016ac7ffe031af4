//! Rendering the metrics: Prometheus text exposition (`format=prometheus`) and, otherwise,
//! the JSON shape Vault's `sys/metrics` answers (`Gauges`, `Counters`, `Samples`).
//!
//! Owns metric names, help texts and label escaping; both formats come from one list of
//! families so they never disagree. Must not count or read anything itself.

use serde_json::{Map, Value, json};

use super::fleet::FleetGauges;
use super::registry::{HistogramSnapshot, RotationOutcome, Snapshot};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

#[derive(Debug, Clone)]
enum SampleValue {
    Number(u64),
    Histogram(HistogramSnapshot),
}

type Labels = Vec<(&'static str, String)>;

struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    samples: Vec<(Labels, SampleValue)>,
}

impl Family {
    fn new(name: &'static str, help: &'static str, kind: Kind) -> Self {
        Self {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    fn number(mut self, labels: Labels, value: u64) -> Self {
        self.samples.push((labels, SampleValue::Number(value)));
        self
    }
}

const ALL_OUTCOMES: [RotationOutcome; 5] = [
    RotationOutcome::Committed,
    RotationOutcome::Failed,
    RotationOutcome::OutOfSync,
    RotationOutcome::Unresolved,
    RotationOutcome::Error,
];

fn families(counters: &Snapshot, fleet: &FleetGauges) -> Vec<Family> {
    let mut rotations = Family::new(
        "rotor_rotations_total",
        "Account rotations by outcome.",
        Kind::Counter,
    );
    for outcome in ALL_OUTCOMES {
        let count = counters
            .rotations
            .iter()
            .find(|(label, _)| *label == outcome.label())
            .map(|(_, count)| *count)
            .unwrap_or(0);
        rotations = rotations.number(vec![("outcome", outcome.label().into())], count);
    }
    let mut rotation_latency = Family::new(
        "rotor_rotation_duration_seconds",
        "Time from a rotation's start to its outcome, verification included.",
        Kind::Histogram,
    );
    rotation_latency.samples.push((
        Vec::new(),
        SampleValue::Histogram(counters.rotation_latency.clone()),
    ));
    let mut verifications = Family::new(
        "rotor_verifications_total",
        "Verification logins by kind (pending candidate, current password) and what they proved.",
        Kind::Counter,
    );
    for (kind, result, count) in &counters.verifications {
        verifications = verifications.number(
            vec![("kind", (*kind).into()), ("result", (*result).into())],
            *count,
        );
    }
    let mut accounts = Family::new("rotor_accounts", "OS accounts by status.", Kind::Gauge);
    for (status, count) in &fleet.accounts_by_status {
        accounts = accounts.number(vec![("status", (*status).into())], *count);
    }
    let out_of_sync = Family::new(
        "rotor_accounts_out_of_sync",
        "OS accounts whose password Rotor cannot prove (neither candidate nor current logs in).",
        Kind::Gauge,
    )
    .number(Vec::new(), fleet.accounts_out_of_sync());
    let revocation_pending = Family::new(
        "rotor_leases_revocation_pending",
        "Leases whose revocation failed and is retried with backoff (sys/leases/lookup shows the error).",
        Kind::Gauge,
    )
    .number(Vec::new(), fleet.leases_revocation_pending);
    let mut enrolled = Family::new(
        "rotor_agents_enrolled",
        "Enrolled, not revoked agents per site.",
        Kind::Gauge,
    );
    let mut connected = Family::new(
        "rotor_agents_connected",
        "Agents with a live link per site.",
        Kind::Gauge,
    );
    let mut in_flight = Family::new(
        "rotor_site_jobs_in_flight",
        "Jobs sent to a site's agents and not yet answered.",
        Kind::Gauge,
    );
    let mut queue_depth = Family::new(
        "rotor_dispatch_queue_depth",
        "Jobs waiting in a site's dispatch queue for a free agent slot (per-agent or per-host cap).",
        Kind::Gauge,
    );
    let mut agent_in_flight = Family::new(
        "rotor_agent_jobs_in_flight",
        "Jobs running on a connected agent.",
        Kind::Gauge,
    );
    for (agent, jobs) in &fleet.agents_jobs_in_flight {
        agent_in_flight = agent_in_flight.number(vec![("agent", agent.clone())], *jobs);
    }
    let agent_reported = agent_families(fleet);
    for (site, gauges) in &fleet.sites {
        enrolled = enrolled.number(vec![("site", site.clone())], gauges.agents_enrolled);
        connected = connected.number(vec![("site", site.clone())], gauges.agents_connected);
        in_flight = in_flight.number(vec![("site", site.clone())], gauges.jobs_in_flight);
        queue_depth = queue_depth.number(vec![("site", site.clone())], gauges.queue_depth);
    }
    let mut api_requests = Family::new(
        "rotor_api_requests_total",
        "HTTP API requests by response status.",
        Kind::Counter,
    );
    for (status, count) in &counters.api_requests {
        api_requests = api_requests.number(vec![("status", status.to_string())], *count);
    }
    let mut api_latency = Family::new(
        "rotor_api_request_duration_seconds",
        "Time to answer an HTTP API request.",
        Kind::Histogram,
    );
    api_latency.samples.push((
        Vec::new(),
        SampleValue::Histogram(counters.api_latency.clone()),
    ));
    let mut internal_errors = Family::new(
        "rotor_internal_errors_total",
        "Broken invariants the controller survived, by kind (each one is a bug to report).",
        Kind::Counter,
    );
    for (kind, count) in &counters.internal_errors {
        internal_errors = internal_errors.number(vec![("kind", (*kind).into())], *count);
    }
    let mut logins = Family::new(
        "rotor_auth_logins_total",
        "Logins through auth methods (approle, userpass) by outcome: success, invalid (bad credentials), refused (address not allowed), rate_limited.",
        Kind::Counter,
    );
    for (method, outcome, count) in &counters.logins {
        logins = logins.number(
            vec![("method", (*method).into()), ("outcome", (*outcome).into())],
            *count,
        );
    }
    let wrapping_reuse = Family::new(
        "rotor_wrapping_token_reuse_total",
        "Wrapping tokens presented again after their answer was unwrapped: someone else may have unwrapped it first.",
        Kind::Counter,
    )
    .number(Vec::new(), counters.wrapping_reuse);
    vec![
        internal_errors,
        logins,
        wrapping_reuse,
        rotations,
        rotation_latency,
        verifications,
        accounts,
        out_of_sync,
        revocation_pending,
        enrolled,
        connected,
        in_flight,
        queue_depth,
        agent_in_flight,
    ]
    .into_iter()
    .chain(agent_reported)
    .chain([api_requests, api_latency])
    .collect()
}

/// What connected agents report about themselves over their links.
fn agent_families(fleet: &FleetGauges) -> Vec<Family> {
    let mut resident = Family::new(
        "rotor_agent_resident_memory_bytes",
        "An agent's resident memory (VmRSS), as it last reported.",
        Kind::Gauge,
    );
    let mut peak = Family::new(
        "rotor_agent_peak_resident_memory_bytes",
        "An agent's peak resident memory (VmHWM) since it started.",
        Kind::Gauge,
    );
    let mut uptime = Family::new(
        "rotor_agent_uptime_seconds",
        "Seconds since the agent process started.",
        Kind::Gauge,
    );
    let mut jobs = Family::new(
        "rotor_agent_jobs_total",
        "Jobs an agent finished since it started, by outcome.",
        Kind::Counter,
    );
    let mut journal = Family::new(
        "rotor_agent_journal_unacknowledged",
        "Job results in an agent's journal not yet acknowledged by the controller.",
        Kind::Gauge,
    );
    let mut links = Family::new(
        "rotor_agent_links_established_total",
        "Links an agent made to a controller since it started (reconnections + 1).",
        Kind::Counter,
    );
    for (agent, reported) in &fleet.agents_reported {
        let label = || vec![("agent", agent.clone())];
        resident = resident.number(label(), reported.rss_bytes);
        peak = peak.number(label(), reported.peak_rss_bytes);
        uptime = uptime.number(label(), reported.uptime_secs);
        jobs = jobs
            .number(
                vec![("agent", agent.clone()), ("outcome", "succeeded".into())],
                reported.jobs_succeeded,
            )
            .number(
                vec![("agent", agent.clone()), ("outcome", "failed".into())],
                reported.jobs_failed,
            );
        journal = journal.number(label(), reported.journal_unacknowledged);
        links = links.number(label(), reported.links_established);
    }
    vec![resident, peak, uptime, jobs, journal, links]
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn label_text(labels: &[(&str, String)], extra: Option<(&str, String)>) -> String {
    let parts: Vec<String> = labels
        .iter()
        .map(|(key, value)| (*key, value.clone()))
        .chain(extra)
        .map(|(key, value)| format!("{key}=\"{}\"", escape_label(&value)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// The Prometheus text exposition format (version 0.0.4).
pub fn prometheus(counters: &Snapshot, fleet: &FleetGauges) -> String {
    let mut text = String::new();
    for family in families(counters, fleet) {
        text.push_str(&format!("# HELP {} {}\n", family.name, family.help));
        text.push_str(&format!("# TYPE {} {}\n", family.name, family.kind.name()));
        for (labels, value) in &family.samples {
            match value {
                SampleValue::Number(number) => text.push_str(&format!(
                    "{}{} {number}\n",
                    family.name,
                    label_text(labels, None)
                )),
                SampleValue::Histogram(histogram) => {
                    for (bound, count) in &histogram.buckets {
                        text.push_str(&format!(
                            "{}_bucket{} {count}\n",
                            family.name,
                            label_text(labels, Some(("le", bound.to_string())))
                        ));
                    }
                    text.push_str(&format!(
                        "{}_bucket{} {}\n",
                        family.name,
                        label_text(labels, Some(("le", "+Inf".into()))),
                        histogram.count
                    ));
                    text.push_str(&format!(
                        "{}_sum{} {}\n",
                        family.name,
                        label_text(labels, None),
                        histogram.sum_seconds
                    ));
                    text.push_str(&format!(
                        "{}_count{} {}\n",
                        family.name,
                        label_text(labels, None),
                        histogram.count
                    ));
                }
            }
        }
    }
    text
}

fn labels_json(labels: &[(&str, String)]) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|(key, value)| (key.to_string(), Value::String(value.clone())))
            .collect::<Map<String, Value>>(),
    )
}

/// Vault's JSON shape. Counters are totals since the controller started (Vault's are per
/// interval); histogram samples are in milliseconds, as Vault's are.
pub fn vault_json(counters: &Snapshot, fleet: &FleetGauges, timestamp: &str) -> Value {
    let mut gauges = Vec::new();
    let mut counter_list = Vec::new();
    let mut samples = Vec::new();
    for family in families(counters, fleet) {
        for (labels, value) in family.samples {
            match (family.kind, value) {
                (Kind::Gauge, SampleValue::Number(number)) => gauges.push(json!({
                    "Name": family.name,
                    "Value": number,
                    "Labels": labels_json(&labels),
                })),
                (_, SampleValue::Number(number)) => counter_list.push(json!({
                    "Name": family.name,
                    "Count": number,
                    "Sum": number,
                    "Labels": labels_json(&labels),
                })),
                (_, SampleValue::Histogram(histogram)) => {
                    let sum_ms = histogram.sum_seconds * 1000.0;
                    let mean_ms = if histogram.count > 0 {
                        sum_ms / histogram.count as f64
                    } else {
                        0.0
                    };
                    samples.push(json!({
                        "Name": family.name,
                        "Count": histogram.count,
                        "Sum": sum_ms,
                        "Mean": mean_ms,
                        "Labels": labels_json(&labels),
                    }));
                }
            }
        }
    }
    json!({
        "Timestamp": timestamp,
        "Gauges": gauges,
        "Counters": counter_list,
        "Samples": samples,
        "Points": [],
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::super::fleet::SiteGauges;
    use super::super::registry::{Registry, VerificationKind};
    use super::*;

    fn example() -> (Snapshot, FleetGauges) {
        let registry = Registry::new();
        registry.rotation_finished(RotationOutcome::Committed, Duration::from_millis(80));
        registry.verification_finished(VerificationKind::Current, "in_sync");
        registry.api_request(204, Duration::from_millis(2));
        let mut sites = BTreeMap::new();
        sites.insert(
            "dc\"1".to_string(),
            SiteGauges {
                agents_enrolled: 2,
                agents_connected: 1,
                jobs_in_flight: 3,
                queue_depth: 7,
            },
        );
        let fleet = FleetGauges {
            accounts_by_status: vec![("in_sync", 4), ("out_of_sync", 1)],
            sites,
            agents_jobs_in_flight: BTreeMap::from([("a-1".to_string(), 3)]),
            agents_reported: BTreeMap::from([(
                "a-1".to_string(),
                rotor_common::wire::AgentMetrics {
                    uptime_secs: 60,
                    rss_bytes: 14_680_064,
                    peak_rss_bytes: 15_728_640,
                    jobs_running: 3,
                    jobs_succeeded: 41,
                    jobs_failed: 2,
                    journal_unacknowledged: 0,
                    links_established: 1,
                },
            )]),
            leases_revocation_pending: 2,
        };
        (registry.snapshot(), fleet)
    }

    #[test]
    fn prometheus_text_has_types_labels_and_cumulative_buckets() {
        let (counters, fleet) = example();
        let text = prometheus(&counters, &fleet);
        for line in [
            "# TYPE rotor_rotations_total counter",
            "rotor_rotations_total{outcome=\"committed\"} 1",
            "rotor_rotations_total{outcome=\"out_of_sync\"} 0",
            "rotor_rotation_duration_seconds_bucket{le=\"0.05\"} 0",
            "rotor_rotation_duration_seconds_bucket{le=\"0.1\"} 1",
            "rotor_rotation_duration_seconds_bucket{le=\"+Inf\"} 1",
            "rotor_rotation_duration_seconds_count 1",
            "rotor_verifications_total{kind=\"current\",result=\"in_sync\"} 1",
            "rotor_accounts_out_of_sync 1",
            "rotor_leases_revocation_pending 2",
            "rotor_agents_connected{site=\"dc\\\"1\"} 1",
            "rotor_site_jobs_in_flight{site=\"dc\\\"1\"} 3",
            "rotor_dispatch_queue_depth{site=\"dc\\\"1\"} 7",
            "rotor_agent_jobs_in_flight{agent=\"a-1\"} 3",
            "rotor_agent_resident_memory_bytes{agent=\"a-1\"} 14680064",
            "rotor_agent_jobs_total{agent=\"a-1\",outcome=\"failed\"} 2",
            "rotor_agent_links_established_total{agent=\"a-1\"} 1",
            "rotor_api_requests_total{status=\"204\"} 1",
            "# TYPE rotor_api_request_duration_seconds histogram",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn json_has_vaults_sections() {
        let (counters, fleet) = example();
        let body = vault_json(&counters, &fleet, "2026-11-24 16:00:00 +0000 UTC");
        let gauge = body["Gauges"]
            .as_array()
            .and_then(|gauges| {
                gauges
                    .iter()
                    .find(|g| g["Name"] == "rotor_accounts_out_of_sync")
            })
            .expect("out_of_sync gauge");
        assert_eq!(gauge["Value"], 1);
        let counter = body["Counters"]
            .as_array()
            .and_then(|counters| {
                counters
                    .iter()
                    .find(|c| c["Name"] == "rotor_api_requests_total")
            })
            .expect("api counter");
        assert_eq!(counter["Count"], 1);
        assert_eq!(counter["Labels"]["status"], "204");
        assert_eq!(body["Samples"].as_array().map(Vec::len), Some(2));
        assert_eq!(body["Points"], json!([]));
    }
}
