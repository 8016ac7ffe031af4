//! When accounts rotate on their own: `rotation_period`, `rotation_schedule` (cron) with an
//! optional `rotation_window`, retry backoff after a certain failure, and lazy rotation.
//!
//! [`due`] is pure: it takes an account record and `now` and answers whether a rotation is
//! due, not due (and when it next is), or a scheduled time whose window was missed (reported,
//! never run late). Everything is computed from the store, so a restarted controller runs a
//! missed period once, not once per missed tick. The loop in `run.rs` acts on the answers.
//! Must not rotate anything itself: the OS engine does. `verify.rs` runs the heartbeat
//! verifications (`verify_period`) from the same loop.

pub mod run;
pub mod verify;

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use croner::Cron;

use crate::engines::os::model::{AccountRecord, AccountStatus};

/// What the schedule says about one account at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Nothing to do; `next` is the next time something is due, when known.
    NotDue { next: Option<u64> },
    /// Rotate now; `scheduled` is the time it was due.
    Now { scheduled: u64 },
    /// A cron time passed beyond its window (e.g. the controller was down): report it and
    /// move on to the following occurrence.
    MissedWindow { scheduled: u64 },
}

/// Parses a 5-field cron expression as Vault's `rotation_schedule` takes it.
pub fn parse_schedule(text: &str) -> Result<Cron, String> {
    Cron::from_str(text.trim()).map_err(|error| format!("'{text}' is not a cron schedule: {error}"))
}

fn to_datetime(unix: u64) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(i64::try_from(unix).ok()?, 0).single()
}

/// The first cron occurrence strictly after `after`.
fn next_occurrence(schedule: &str, after: u64) -> Option<u64> {
    let cron = parse_schedule(schedule).ok()?;
    let start = to_datetime(after)?;
    let next = cron.find_next_occurrence(&start, false).ok()?;
    u64::try_from(next.timestamp()).ok()
}

/// When the account's next automatic rotation is due, ignoring retries and in-flight work.
pub fn next_rotation(account: &AccountRecord) -> Option<u64> {
    if account.disable_automated_rotation {
        return None;
    }
    let base = account
        .last_vault_rotation_unix
        .unwrap_or(account.created_unix);
    if let Some(schedule) = &account.rotation_schedule {
        let anchor = base.max(account.schedule_anchor_unix.unwrap_or(0));
        return next_occurrence(schedule, anchor);
    }
    account
        .rotation_period_secs
        .map(|period| base.saturating_add(period))
}

pub fn due(account: &AccountRecord, now: u64) -> Due {
    if account.disable_automated_rotation || account.pending.is_some() {
        return Due::NotDue { next: None };
    }
    if account.status != AccountStatus::InSync {
        // Out of sync or being verified: a rotation would only fail; reconcile first.
        return Due::NotDue { next: None };
    }
    let Some(scheduled) = next_rotation(account) else {
        return Due::NotDue { next: None };
    };
    if let Some(retry_after) = account.retry_after_unix
        && retry_after > now
        && account.failed_attempts > 0
    {
        return Due::NotDue {
            next: Some(retry_after.max(scheduled)),
        };
    }
    if now < scheduled {
        return Due::NotDue {
            next: Some(scheduled),
        };
    }
    if account.rotation_schedule.is_some()
        && let Some(window) = account.rotation_window_secs
        && now > scheduled.saturating_add(window)
        && account.failed_attempts == 0
    {
        return Due::MissedWindow { scheduled };
    }
    Due::Now { scheduled }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> AccountRecord {
        serde_json::from_value(serde_json::json!({
            "host": "h", "name": "a", "username": "a", "parent_ref": null,
            "verify_connection": true, "disable_automated_rotation": false,
            "rotation_period_secs": null, "rotation_schedule": null, "rotation_window_secs": null,
            "auto_reconcile": false, "current_version": 1, "pending": null, "status": "in_sync",
            "status_detail": null, "last_vault_rotation_unix": null, "last_error": null,
            "failed_attempts": 0, "retry_after_unix": null, "created_unix": 1_000_000
        }))
        .expect("account record")
    }

    #[test]
    fn period_is_due_once_after_any_number_of_missed_periods() {
        let mut record = account();
        record.rotation_period_secs = Some(3600);
        assert_eq!(
            due(&record, 1_000_000 + 10),
            Due::NotDue {
                next: Some(1_003_600)
            }
        );
        assert_eq!(
            due(&record, 1_003_600),
            Due::Now {
                scheduled: 1_003_600
            }
        );
        // Ten periods later (controller down): still one rotation, due at the first time.
        assert_eq!(
            due(&record, 1_036_000),
            Due::Now {
                scheduled: 1_003_600
            }
        );
        record.last_vault_rotation_unix = Some(1_036_000);
        assert_eq!(
            due(&record, 1_036_001),
            Due::NotDue {
                next: Some(1_039_600)
            }
        );
    }

    #[test]
    fn schedule_with_window_reports_a_missed_time_instead_of_running_late() {
        let mut record = account();
        // 1_000_000 is 1970-01-12T13:46:40Z; "0 * * * *" next fires at 14:00:00 = 1_000_800.
        record.rotation_schedule = Some("0 * * * *".into());
        record.rotation_window_secs = Some(600);
        assert_eq!(
            due(&record, 1_000_100),
            Due::NotDue {
                next: Some(1_000_800)
            }
        );
        assert_eq!(
            due(&record, 1_000_900),
            Due::Now {
                scheduled: 1_000_800
            }
        );
        assert_eq!(
            due(&record, 1_001_500),
            Due::MissedWindow {
                scheduled: 1_000_800
            }
        );
        record.schedule_anchor_unix = Some(1_001_500);
        assert_eq!(
            due(&record, 1_001_500),
            Due::NotDue {
                next: Some(1_004_400)
            }
        );
    }

    #[test]
    fn disabled_in_flight_out_of_sync_and_backing_off_are_not_due() {
        let mut record = account();
        record.rotation_period_secs = Some(60);
        record.disable_automated_rotation = true;
        assert_eq!(due(&record, 2_000_000), Due::NotDue { next: None });
        record.disable_automated_rotation = false;
        record.status = AccountStatus::OutOfSync;
        assert_eq!(due(&record, 2_000_000), Due::NotDue { next: None });
        record.status = AccountStatus::InSync;
        record.failed_attempts = 2;
        record.retry_after_unix = Some(2_000_500);
        assert_eq!(
            due(&record, 2_000_000),
            Due::NotDue {
                next: Some(2_000_500)
            }
        );
        assert!(matches!(due(&record, 2_000_600), Due::Now { .. }));
    }

    #[test]
    fn bad_schedules_are_refused_with_a_reason() {
        assert!(parse_schedule("0 * * * *").is_ok());
        let error = parse_schedule("every hour").expect_err("not cron");
        assert!(error.contains("every hour"), "{error}");
        assert!(parse_schedule("61 * * * *").is_err());
    }
}
