//! Recovery after a controller crash (issue 16): on a [`Fleet`], every host's children start
//! rotating at once, the controller is killed with -9 at a random moment, and it is started
//! again. A round's figure is the time from the restart command to every account settled
//! (none rotating or verifying, by the controller's own `rotor_accounts` gauges scraped
//! every 100 ms from inside its container), and how the pending changes settled: from the
//! agent's journal or by a probe login.
//!
//! Owns the round's script and its reading. Must not judge the figures (the caller reports
//! them); each round checks that nothing ended out of sync.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::RngExt;

use super::fleet::Fleet;
use super::stats::labelled_value;

/// One kill and recovery.
#[derive(Debug, Clone, Copy)]
pub struct RecoveryRound {
    /// When the kill came after the rotations started.
    pub killed_after: Duration,
    /// Accounts rotating or verifying at the first scrape after the restart.
    pub pending_at_restart: u64,
    /// From the restart command to every account settled.
    pub settled_after: Duration,
    /// Pending changes settled from the agent's journal / by a probe login.
    pub from_journal: u64,
    pub by_probe: u64,
}

/// Polls the restarted controller's gauges until no account rotates or verifies; prints
/// the first count, the verification counters and the out-of-sync gauge at the end.
const SETTLE_SCRIPT: &str = r#"
scrape() {
  curl -sS --max-time 5 --cacert "$ROTOR_CACERT" -H "X-Vault-Token: $ROTOR_TOKEN" \
    "$ROTOR_ADDR/v1/sys/metrics?format=prometheus" 2>/dev/null || true
}
busy() { awk '/^rotor_accounts\{status="(rotating|verifying)"\}/ {n += $2} END {print n + 0}'; }
first=""
tries=0
while :; do
  metrics=$(scrape)
  if printf '%s\n' "$metrics" | grep -q '^rotor_accounts'; then
    count=$(printf '%s\n' "$metrics" | busy)
    [ -z "$first" ] && first=$count
    [ "$count" -eq 0 ] && break
  fi
  tries=$((tries + 1))
  [ "$tries" -gt 1200 ] && { echo "unsettled"; exit 3; }
  sleep 0.1
done
echo "pending_at_restart $first"
printf '%s\n' "$metrics" | awk '
  /^rotor_verifications_total\{kind="pending",result="agent_journal"\}/ {j += $2}
  /^rotor_verifications_total\{kind="pending",result="(candidate_logs_in|current_logs_in|neither_logs_in)"\}/ {p += $2}
  /^rotor_accounts\{status="out_of_sync"\}/ {o += $2}
  END {print "from_journal " j + 0; print "by_probe " p + 0; print "out_of_sync " o + 0}'
"#;

impl Fleet {
    /// One round: rotations on every host, a kill -9 of the controller at a random moment
    /// in `kill_window`, a restart, and the wait until every account has settled.
    pub fn recovery_round(&self, kill_window: (Duration, Duration)) -> Result<RecoveryRound> {
        let accounts = self.users.join(",");
        let names: Vec<&str> = self.hosts.iter().map(|h| h.host.name()).collect();
        let rotate = format!(
            "for h in {}; do rotor write os/hosts/$h/rotate accounts={accounts} >/dev/null 2>&1 & done\nwait\n",
            names.join(" ")
        );
        let (earliest, latest) = kill_window;
        let killed_after = Duration::from_millis(
            rand::rng().random_range(earliest.as_millis() as u64..=latest.as_millis() as u64),
        );
        std::thread::scope(|scope| -> Result<()> {
            let rotations = scope.spawn(|| self.controller_script(&rotate));
            std::thread::sleep(killed_after);
            self.rotor.kill_controller()?;
            // The CLI calls fail with the controller gone; that is the point.
            let _ = rotations.join();
            Ok(())
        })?;
        let restarted = Instant::now();
        self.rotor.restart_controller()?;
        let output = self.controller_script(SETTLE_SCRIPT)?;
        let settled_after = restarted.elapsed();
        if !output.success() {
            bail!(
                "accounts did not settle within two minutes of the restart: {}",
                output.diagnostics()
            );
        }
        let out_of_sync = labelled_value(&output.stdout, "out_of_sync")?;
        if out_of_sync > 0 {
            bail!("{out_of_sync} accounts ended out of sync after a recovery");
        }
        Ok(RecoveryRound {
            killed_after,
            pending_at_restart: labelled_value(&output.stdout, "pending_at_restart")
                .context("no first count")?,
            settled_after,
            from_journal: labelled_value(&output.stdout, "from_journal")?,
            by_probe: labelled_value(&output.stdout, "by_probe")?,
        })
    }
}
