//! The `passwd` conversation as a pure state machine: PTY output in, the next answer or a
//! verdict out. Owns the prompt patterns (`PromptSet`) and the rules for what each output means
//! at each stage. Does no IO, holds no password (it names which one to send, the driver sends
//! it) and knows nothing about SSH.
//!
//! Calling order for a driver: feed every chunk of output to [`PasswdDialog::on_output`] and
//! act on the step it returns; when the channel ends call [`PasswdDialog::on_end`] with the
//! exit status; when a step timeout fires call [`PasswdDialog::on_timeout`]. Once a verdict
//! (`Succeeded` / `Failed`) was returned, stop writing to the PTY.

use serde::{Deserialize, Serialize};

/// Longest message taken from `passwd`'s output into a failure, in characters.
const MESSAGE_LIMIT_CHARS: usize = 300;

/// The texts `passwd` prints on one kind of host. Prompts are matched at the end of the output
/// (ignoring trailing whitespace); messages anywhere in the output since the last answer.
/// Matching is plain, case-sensitive substring matching.
///
/// Every field may be overridden per host (serde, missing fields take the defaults). The
/// default set understands both Debian/Ubuntu and RHEL-family hosts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PromptSet {
    /// Prompts asking for the account's current password.
    pub current_password_prompts: Vec<String>,
    /// Prompts asking for the new password.
    pub new_password_prompts: Vec<String>,
    /// Prompts asking to type the new password again.
    pub retype_password_prompts: Vec<String>,
    /// Messages meaning the password was changed.
    pub success_messages: Vec<String>,
    /// Messages meaning the current password was wrong (seen after the current password
    /// was answered and before a new-password prompt).
    pub current_rejected_messages: Vec<String>,
    /// Messages meaning `passwd` refuses to change the password at all, for a reason other
    /// than a wrong current password (minimum password age, ...).
    pub refusal_messages: Vec<String>,
    /// Messages meaning the new password was refused and the old one stays.
    pub new_rejected_messages: Vec<String>,
}

impl PromptSet {
    /// What Debian 12 (and Ubuntu) `passwd` prints under `LC_ALL=C`.
    pub fn debian() -> PromptSet {
        PromptSet {
            current_password_prompts: strings(&["Current password:"]),
            new_password_prompts: strings(&["New password:"]),
            retype_password_prompts: strings(&["Retype new password:"]),
            success_messages: strings(&["passwd: password updated successfully"]),
            current_rejected_messages: strings(&["Authentication token manipulation error"]),
            refusal_messages: strings(&["You must wait longer to change your password"]),
            new_rejected_messages: strings(&[
                "passwd: password unchanged",
                "Sorry, passwords do not match",
            ]),
        }
    }

    /// What RHEL-family `passwd` prints (7 with `(current) UNIX password:`, 8 and later
    /// with `Current password:`), including libpwquality's `BAD PASSWORD:` complaints.
    pub fn rhel() -> PromptSet {
        PromptSet {
            current_password_prompts: strings(&["Current password:", "(current) UNIX password:"]),
            new_password_prompts: strings(&["New password:", "New UNIX password:"]),
            retype_password_prompts: strings(&[
                "Retype new password:",
                "Retype new UNIX password:",
            ]),
            success_messages: strings(&["passwd: all authentication tokens updated successfully"]),
            current_rejected_messages: strings(&[
                "Authentication token manipulation error",
                "passwd: Authentication failure",
            ]),
            refusal_messages: strings(&[
                "You must wait longer to change your password",
                "passwd: Have exhausted maximum number of retries for service",
            ]),
            new_rejected_messages: strings(&[
                "passwd: password unchanged",
                "Sorry, passwords do not match",
                "passwd: Have exhausted maximum number of retries",
            ]),
        }
    }

    /// The union of two sets (patterns of `self` first, duplicates dropped).
    pub fn merged_with(mut self, other: PromptSet) -> PromptSet {
        fn extend(into: &mut Vec<String>, from: Vec<String>) {
            for pattern in from {
                if !into.contains(&pattern) {
                    into.push(pattern);
                }
            }
        }
        extend(
            &mut self.current_password_prompts,
            other.current_password_prompts,
        );
        extend(&mut self.new_password_prompts, other.new_password_prompts);
        extend(
            &mut self.retype_password_prompts,
            other.retype_password_prompts,
        );
        extend(&mut self.success_messages, other.success_messages);
        extend(
            &mut self.current_rejected_messages,
            other.current_rejected_messages,
        );
        extend(&mut self.refusal_messages, other.refusal_messages);
        extend(&mut self.new_rejected_messages, other.new_rejected_messages);
        self
    }

    /// Refuses a set that cannot drive a dialog: a prompt list that is empty, or an empty
    /// pattern (which would match any output). Returns what is wrong, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        let fields: [(&str, &Vec<String>, bool); 7] = [
            (
                "current_password_prompts",
                &self.current_password_prompts,
                true,
            ),
            ("new_password_prompts", &self.new_password_prompts, true),
            (
                "retype_password_prompts",
                &self.retype_password_prompts,
                true,
            ),
            ("success_messages", &self.success_messages, true),
            (
                "current_rejected_messages",
                &self.current_rejected_messages,
                false,
            ),
            ("refusal_messages", &self.refusal_messages, false),
            ("new_rejected_messages", &self.new_rejected_messages, false),
        ];
        for (name, patterns, required) in fields {
            if required && patterns.is_empty() {
                return Err(format!(
                    "prompt set field `{name}` needs at least one pattern"
                ));
            }
            if patterns.iter().any(|pattern| pattern.trim().is_empty()) {
                return Err(format!(
                    "prompt set field `{name}` contains an empty pattern, which would match any output"
                ));
            }
        }
        Ok(())
    }
}

impl Default for PromptSet {
    /// Debian and RHEL patterns together: their prompts do not collide.
    fn default() -> PromptSet {
        PromptSet::debian().merged_with(PromptSet::rhel())
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

/// Which secret the driver must type next (followed by a newline).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    CurrentPassword,
    NewPassword,
    RetypeNewPassword,
}

/// What the driver does after feeding output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DialogStep {
    /// Type this secret and a newline.
    Send(Answer),
    /// Nothing recognisable yet: read more output.
    Wait,
    /// `passwd` changed the password.
    Succeeded,
    /// The dialog is over without a confirmed change; see the failure for certainty.
    Failed(DialogFailure),
}

/// Why the dialog ended without a confirmed change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DialogFailure {
    /// `passwd` refused the current password; the new one was never sent.
    CurrentPasswordRejected,
    /// `passwd` refused the new password and said so (too short, too simple, reused ...).
    NewPasswordRejected { message: String },
    /// `passwd` refused before the new password was sent, for another reason.
    Refused { message: String },
    /// No expected output arrived in time, and the new password had not been sent.
    TimedOutBeforeChange { waiting_for: &'static str },
    /// The new password was sent and no clear verdict followed.
    OutcomeUnknown { detail: String },
}

impl DialogFailure {
    /// True when nothing can have changed on the host.
    pub fn is_certain_before_change(&self) -> bool {
        !matches!(self, DialogFailure::OutcomeUnknown { .. })
    }
}

/// How far the conversation got: which answers have been sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    AwaitingFirstPrompt,
    CurrentSent,
    NewSent,
    RetypeSent,
}

impl Stage {
    fn waiting_for(self) -> &'static str {
        match self {
            Stage::AwaitingFirstPrompt => "passwd's first prompt",
            Stage::CurrentSent => "passwd's new-password prompt",
            Stage::NewSent => "passwd's retype prompt",
            Stage::RetypeSent => "passwd's verdict",
        }
    }

    fn new_password_sent(self) -> bool {
        matches!(self, Stage::NewSent | Stage::RetypeSent)
    }
}

/// One `passwd` conversation. See the module docs for the calling order.
#[derive(Debug)]
pub struct PasswdDialog {
    prompts: PromptSet,
    stage: Stage,
    /// All output so far; only `output[region_start..]` (what came after the last answer)
    /// is matched, so an old prompt is never answered twice.
    output: Vec<u8>,
    region_start: usize,
    /// Set once a verdict was returned; later calls return it again.
    verdict: Option<DialogStep>,
}

impl PasswdDialog {
    pub fn new(prompts: &PromptSet) -> PasswdDialog {
        PasswdDialog {
            prompts: prompts.clone(),
            stage: Stage::AwaitingFirstPrompt,
            output: Vec::new(),
            region_start: 0,
            verdict: None,
        }
    }

    /// True once the new password has been handed out to be typed: from then on a missing
    /// verdict means the outcome is unknown.
    pub fn new_password_sent(&self) -> bool {
        self.stage.new_password_sent()
    }

    /// Feeds output from the PTY (any split) and returns what to do next.
    pub fn on_output(&mut self, bytes: &[u8]) -> DialogStep {
        if let Some(verdict) = &self.verdict {
            return verdict.clone();
        }
        self.output.extend_from_slice(bytes);
        let region = self.region_text();
        let step = self.decide(&region);
        match &step {
            DialogStep::Send(answer) => {
                self.stage = match answer {
                    Answer::CurrentPassword => Stage::CurrentSent,
                    Answer::NewPassword => Stage::NewSent,
                    Answer::RetypeNewPassword => Stage::RetypeSent,
                };
                self.region_start = self.output.len();
            }
            DialogStep::Wait => {}
            DialogStep::Succeeded | DialogStep::Failed(_) => self.verdict = Some(step.clone()),
        }
        step
    }

    /// The PTY channel ended; `exit_status` is what the server reported, if anything.
    /// Always returns a verdict.
    pub fn on_end(&mut self, exit_status: Option<u32>) -> DialogStep {
        if let Some(verdict) = &self.verdict {
            return verdict.clone();
        }
        let region = self.region_text();
        let message = summarize(&region);
        let status = match exit_status {
            Some(code) => format!("exit status {code}"),
            None => "no exit status".to_owned(),
        };
        let step = match self.stage {
            Stage::AwaitingFirstPrompt => DialogStep::Failed(DialogFailure::Refused {
                message: format!("passwd ended ({status}) before asking for a password: {message}"),
            }),
            Stage::CurrentSent => {
                if contains_any(&region, &self.prompts.current_rejected_messages) {
                    DialogStep::Failed(DialogFailure::CurrentPasswordRejected)
                } else {
                    DialogStep::Failed(DialogFailure::Refused {
                        message: format!(
                            "passwd ended ({status}) before asking for the new password: {message}"
                        ),
                    })
                }
            }
            Stage::NewSent | Stage::RetypeSent => {
                if exit_status == Some(0) {
                    DialogStep::Succeeded
                } else if contains_any(&region, &self.prompts.new_rejected_messages) {
                    DialogStep::Failed(DialogFailure::NewPasswordRejected { message })
                } else {
                    DialogStep::Failed(DialogFailure::OutcomeUnknown {
                        detail: format!(
                            "passwd ended ({status}) after the new password was sent, without a recognised verdict: {message}"
                        ),
                    })
                }
            }
        };
        self.verdict = Some(step.clone());
        step
    }

    /// The driver's step timeout fired while waiting for output. Always a failure.
    pub fn on_timeout(&mut self) -> DialogFailure {
        let failure = if self.stage.new_password_sent() {
            DialogFailure::OutcomeUnknown {
                detail: format!(
                    "timed out waiting for {} after the new password was sent; output so far: {}",
                    self.stage.waiting_for(),
                    summarize(&self.region_text())
                ),
            }
        } else {
            DialogFailure::TimedOutBeforeChange {
                waiting_for: self.stage.waiting_for(),
            }
        };
        self.verdict = Some(DialogStep::Failed(failure.clone()));
        failure
    }

    fn region_text(&self) -> String {
        let region = self.output.get(self.region_start..).unwrap_or_default();
        String::from_utf8_lossy(region).into_owned()
    }

    fn decide(&self, region: &str) -> DialogStep {
        let prompts = &self.prompts;
        // Precedence retype > new > current: a retype prompt usually contains the new one.
        let prompt = if ends_with_any(region, &prompts.retype_password_prompts) {
            Some(Answer::RetypeNewPassword)
        } else if ends_with_any(region, &prompts.new_password_prompts) {
            Some(Answer::NewPassword)
        } else if ends_with_any(region, &prompts.current_password_prompts) {
            Some(Answer::CurrentPassword)
        } else {
            None
        };
        let before_prompt = || summarize(strip_trailing_prompt(region, prompts));
        // Messages count only once their line is complete, so a verdict never rests on half
        // a line; prompts have no line end and are matched at the very end instead.
        let lines = complete_lines(region);
        match self.stage {
            Stage::AwaitingFirstPrompt => match prompt {
                Some(Answer::CurrentPassword) => DialogStep::Send(Answer::CurrentPassword),
                // No current password asked (PAM already had it): go straight to the new one.
                Some(Answer::NewPassword) => DialogStep::Send(Answer::NewPassword),
                Some(Answer::RetypeNewPassword) => DialogStep::Failed(DialogFailure::Refused {
                    message: "passwd asked to retype a password before asking for one".to_owned(),
                }),
                None if contains_any(lines, &prompts.refusal_messages) => {
                    DialogStep::Failed(DialogFailure::Refused {
                        message: summarize(lines),
                    })
                }
                None => DialogStep::Wait,
            },
            Stage::CurrentSent => match prompt {
                Some(Answer::NewPassword) => DialogStep::Send(Answer::NewPassword),
                // Asked again for the current one: it was wrong; never answer twice.
                Some(Answer::CurrentPassword) => {
                    DialogStep::Failed(DialogFailure::CurrentPasswordRejected)
                }
                Some(Answer::RetypeNewPassword) => DialogStep::Failed(DialogFailure::Refused {
                    message: "passwd asked to retype a password before asking for a new one"
                        .to_owned(),
                }),
                None if contains_any(lines, &prompts.refusal_messages) => {
                    DialogStep::Failed(DialogFailure::Refused {
                        message: summarize(lines),
                    })
                }
                None if contains_any(lines, &prompts.current_rejected_messages) => {
                    DialogStep::Failed(DialogFailure::CurrentPasswordRejected)
                }
                None => DialogStep::Wait,
            },
            Stage::NewSent => match prompt {
                Some(Answer::RetypeNewPassword) => DialogStep::Send(Answer::RetypeNewPassword),
                // Asked for a new password again: this one was refused; never answer again.
                Some(Answer::NewPassword) => {
                    DialogStep::Failed(DialogFailure::NewPasswordRejected {
                        message: before_prompt(),
                    })
                }
                Some(Answer::CurrentPassword) => {
                    DialogStep::Failed(DialogFailure::OutcomeUnknown {
                        detail: format!(
                            "passwd asked for the current password after the new one was sent: {}",
                            before_prompt()
                        ),
                    })
                }
                None => self.verdict_from_messages(lines),
            },
            Stage::RetypeSent => match prompt {
                Some(Answer::NewPassword) => {
                    DialogStep::Failed(DialogFailure::NewPasswordRejected {
                        message: before_prompt(),
                    })
                }
                Some(other) => DialogStep::Failed(DialogFailure::OutcomeUnknown {
                    detail: format!(
                        "passwd prompted again ({}) after the new password was retyped: {}",
                        match other {
                            Answer::CurrentPassword => "current password",
                            Answer::NewPassword => "new password",
                            Answer::RetypeNewPassword => "retype",
                        },
                        before_prompt()
                    ),
                }),
                None => self.verdict_from_messages(lines),
            },
        }
    }

    /// After the new password was sent: a success line, an explicit refusal, or wait.
    fn verdict_from_messages(&self, lines: &str) -> DialogStep {
        if contains_any(lines, &self.prompts.success_messages) {
            DialogStep::Succeeded
        } else if contains_any(lines, &self.prompts.new_rejected_messages) {
            DialogStep::Failed(DialogFailure::NewPasswordRejected {
                message: summarize(lines),
            })
        } else {
            DialogStep::Wait
        }
    }
}

/// The text up to and including the last line end.
fn complete_lines(text: &str) -> &str {
    match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    }
}

fn ends_with_any(text: &str, patterns: &[String]) -> bool {
    let text = text.trim_end();
    patterns.iter().any(|pattern| {
        let pattern = pattern.trim_end();
        !pattern.is_empty() && text.ends_with(pattern)
    })
}

fn contains_any(text: &str, patterns: &[String]) -> bool {
    patterns
        .iter()
        .any(|pattern| !pattern.trim().is_empty() && text.contains(pattern.as_str()))
}

/// The text before a trailing prompt (the reason passwd gave for prompting again).
fn strip_trailing_prompt<'a>(text: &'a str, prompts: &PromptSet) -> &'a str {
    let trimmed = text.trim_end();
    let all_prompts = prompts
        .retype_password_prompts
        .iter()
        .chain(&prompts.new_password_prompts)
        .chain(&prompts.current_password_prompts);
    for pattern in all_prompts {
        let pattern = pattern.trim_end();
        if !pattern.is_empty()
            && let Some(before) = trimmed.strip_suffix(pattern)
        {
            return before;
        }
    }
    trimmed
}

/// One printable line from PTY output, for a failure message: control characters dropped,
/// lines joined with " / ", bounded in length.
fn summarize(text: &str) -> String {
    let joined = text
        .split(['\r', '\n'])
        .map(|line| {
            line.chars()
                .filter(|character| !character.is_control())
                .collect::<String>()
        })
        .map(|line| line.trim().to_owned())
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" / ");
    if joined.is_empty() {
        return "(no output)".to_owned();
    }
    if joined.chars().count() > MESSAGE_LIMIT_CHARS {
        let mut cut: String = joined.chars().take(MESSAGE_LIMIT_CHARS).collect();
        cut.push('…');
        cut
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Output between answers, and the step expected once that output has arrived.
    type Transcript = Vec<(&'static str, DialogStep)>;

    const BANNER_AND_CURRENT: &str = "Changing password for app1.\r\nCurrent password: ";

    fn send(answer: Answer) -> DialogStep {
        DialogStep::Send(answer)
    }

    fn new_rejected(message: &str) -> DialogStep {
        DialogStep::Failed(DialogFailure::NewPasswordRejected {
            message: message.to_owned(),
        })
    }

    fn debian_success() -> Transcript {
        vec![
            (BANNER_AND_CURRENT, send(Answer::CurrentPassword)),
            ("\r\nNew password: ", send(Answer::NewPassword)),
            ("\r\nRetype new password: ", send(Answer::RetypeNewPassword)),
            (
                "\r\npasswd: password updated successfully\r\n",
                DialogStep::Succeeded,
            ),
        ]
    }

    fn debian_wrong_current() -> Transcript {
        vec![
            (BANNER_AND_CURRENT, send(Answer::CurrentPassword)),
            (
                "\r\npasswd: Authentication token manipulation error\r\npasswd: password unchanged\r\n",
                DialogStep::Failed(DialogFailure::CurrentPasswordRejected),
            ),
        ]
    }

    fn debian_new_rejected(reason: &'static str) -> Transcript {
        vec![
            (BANNER_AND_CURRENT, send(Answer::CurrentPassword)),
            ("\r\nNew password: ", send(Answer::NewPassword)),
            (
                match reason {
                    "short" => "\r\nYou must choose a longer password.\r\nNew password: ",
                    "empty" => "\r\nNo password has been supplied.\r\nNew password: ",
                    _ => "\r\nThe password has not been changed.\r\nNew password: ",
                },
                new_rejected(match reason {
                    "short" => "You must choose a longer password.",
                    "empty" => "No password has been supplied.",
                    _ => "The password has not been changed.",
                }),
            ),
        ]
    }

    fn debian_retype_mismatch() -> Transcript {
        vec![
            (BANNER_AND_CURRENT, send(Answer::CurrentPassword)),
            ("\r\nNew password: ", send(Answer::NewPassword)),
            ("\r\nRetype new password: ", send(Answer::RetypeNewPassword)),
            (
                "\r\nSorry, passwords do not match.\r\npasswd: Authentication token manipulation error\r\npasswd: password unchanged\r\n",
                new_rejected(
                    "Sorry, passwords do not match. / passwd: Authentication token manipulation error / passwd: password unchanged",
                ),
            ),
        ]
    }

    fn rhel_success() -> Transcript {
        vec![
            (
                "Changing password for user app1.\r\nCurrent password: ",
                send(Answer::CurrentPassword),
            ),
            ("\r\nNew password: ", send(Answer::NewPassword)),
            ("\r\nRetype new password: ", send(Answer::RetypeNewPassword)),
            (
                "\r\npasswd: all authentication tokens updated successfully.\r\n",
                DialogStep::Succeeded,
            ),
        ]
    }

    fn rhel7_bad_password() -> Transcript {
        vec![
            (
                "Changing password for user app1.\r\nChanging password for app1.\r\n(current) UNIX password: ",
                send(Answer::CurrentPassword),
            ),
            ("\r\nNew password: ", send(Answer::NewPassword)),
            (
                "\r\nBAD PASSWORD: The password is shorter than 8 characters\r\nNew password: ",
                new_rejected("BAD PASSWORD: The password is shorter than 8 characters"),
            ),
        ]
    }

    fn rhel_wrong_current() -> Transcript {
        vec![
            (
                "Changing password for user app1.\r\nCurrent password: ",
                send(Answer::CurrentPassword),
            ),
            (
                "\r\npasswd: Authentication token manipulation error\r\n",
                DialogStep::Failed(DialogFailure::CurrentPasswordRejected),
            ),
        ]
    }

    fn min_age_refusal() -> Transcript {
        vec![
            (BANNER_AND_CURRENT, send(Answer::CurrentPassword)),
            (
                "\r\nYou must wait longer to change your password.\r\npasswd: Authentication token manipulation error\r\npasswd: password unchanged\r\n",
                DialogStep::Failed(DialogFailure::Refused {
                    message: "You must wait longer to change your password. / passwd: Authentication token manipulation error / passwd: password unchanged".to_owned(),
                }),
            ),
        ]
    }

    fn all_transcripts() -> Vec<(&'static str, Transcript)> {
        vec![
            ("debian success", debian_success()),
            ("debian wrong current", debian_wrong_current()),
            ("debian too short", debian_new_rejected("short")),
            ("debian empty", debian_new_rejected("empty")),
            ("debian same as old", debian_new_rejected("same")),
            ("debian retype mismatch", debian_retype_mismatch()),
            ("rhel success", rhel_success()),
            ("rhel7 bad password", rhel7_bad_password()),
            ("rhel wrong current", rhel_wrong_current()),
            ("minimum age refusal", min_age_refusal()),
        ]
    }

    /// Feeds the transcript's output as `chunks` (the concatenated output cut anywhere) and
    /// returns every non-Wait step up to the first verdict.
    fn run_chunks(chunks: &[&[u8]]) -> Vec<DialogStep> {
        let mut dialog = PasswdDialog::new(&PromptSet::default());
        let mut steps = Vec::new();
        for chunk in chunks {
            match dialog.on_output(chunk) {
                DialogStep::Wait => {}
                step @ DialogStep::Send(_) => steps.push(step),
                verdict => {
                    steps.push(verdict);
                    return steps;
                }
            }
        }
        steps
    }

    /// Equal steps, except that a failure message may be cut short when the output was: a
    /// verdict is given as soon as its line is complete, before later lines arrive.
    fn assert_steps(actual: &[DialogStep], expected: &[DialogStep], context: &str) {
        assert_eq!(
            actual.len(),
            expected.len(),
            "{context}: {actual:?} vs {expected:?}"
        );
        for (got, want) in actual.iter().zip(expected) {
            let same = match (got, want) {
                (
                    DialogStep::Failed(DialogFailure::NewPasswordRejected { message: got }),
                    DialogStep::Failed(DialogFailure::NewPasswordRejected { message: want }),
                )
                | (
                    DialogStep::Failed(DialogFailure::Refused { message: got }),
                    DialogStep::Failed(DialogFailure::Refused { message: want }),
                ) => !got.is_empty() && want.starts_with(got.as_str()),
                _ => got == want,
            };
            assert!(same, "{context}: got {got:?}, expected {want:?}");
        }
    }

    fn expected_steps(transcript: &Transcript) -> Vec<DialogStep> {
        transcript.iter().map(|(_, step)| step.clone()).collect()
    }

    /// Runs the transcript with segment `cut_segment` delivered as two chunks split at `cut`.
    /// A decision may come early (before a prompt's trailing space); the rest of the segment
    /// then arrives after the answer, as it would on a real PTY.
    fn run_with_cut(transcript: &Transcript, cut_segment: usize, cut: usize) -> Vec<DialogStep> {
        let mut chunks: Vec<&[u8]> = Vec::new();
        for (index, (output, _)) in transcript.iter().enumerate() {
            let bytes = output.as_bytes();
            if index == cut_segment {
                chunks.push(&bytes[..cut]);
                chunks.push(&bytes[cut..]);
            } else {
                chunks.push(bytes);
            }
        }
        run_chunks(&chunks)
    }

    #[test]
    fn every_transcript_whole_chunks() {
        for (name, transcript) in all_transcripts() {
            let chunks: Vec<&[u8]> = transcript.iter().map(|(o, _)| o.as_bytes()).collect();
            assert_steps(&run_chunks(&chunks), &expected_steps(&transcript), name);
        }
    }

    #[test]
    fn every_transcript_split_at_every_byte_boundary() {
        for (name, transcript) in all_transcripts() {
            let expected = expected_steps(&transcript);
            for (segment, (output, _)) in transcript.iter().enumerate() {
                for cut in 0..=output.len() {
                    assert_steps(
                        &run_with_cut(&transcript, segment, cut),
                        &expected,
                        &format!("{name}: segment {segment} cut at byte {cut}"),
                    );
                }
            }
        }
    }

    #[test]
    fn every_transcript_one_byte_at_a_time() {
        for (name, transcript) in all_transcripts() {
            let all: Vec<u8> = transcript
                .iter()
                .flat_map(|(output, _)| output.bytes())
                .collect();
            let chunks: Vec<&[u8]> = all.chunks(1).collect();
            assert_steps(&run_chunks(&chunks), &expected_steps(&transcript), name);
        }
    }

    #[test]
    fn a_second_new_prompt_after_retype_is_a_rejection_and_never_answered() {
        let mut dialog = PasswdDialog::new(&PromptSet::debian());
        assert_eq!(
            dialog.on_output(BANNER_AND_CURRENT.as_bytes()),
            send(Answer::CurrentPassword)
        );
        assert_eq!(
            dialog.on_output(b"\r\nNew password: "),
            send(Answer::NewPassword)
        );
        assert_eq!(
            dialog.on_output(b"\r\nRetype new password: "),
            send(Answer::RetypeNewPassword)
        );
        let verdict = dialog.on_output(b"\r\nPassword has been already used.\r\nNew password: ");
        assert_eq!(verdict, new_rejected("Password has been already used."));
        // More prompts: the verdict stands, nothing more is sent.
        assert_eq!(dialog.on_output(b"\r\nNew password: "), verdict);
    }

    #[test]
    fn end_of_channel_uses_the_exit_status() {
        let mut before_anything = PasswdDialog::new(&PromptSet::default());
        assert!(matches!(
            before_anything.on_end(Some(127)),
            DialogStep::Failed(DialogFailure::Refused { .. })
        ));

        let mut after_retype = PasswdDialog::new(&PromptSet::default());
        after_retype.on_output(BANNER_AND_CURRENT.as_bytes());
        after_retype.on_output(b"\r\nNew password: ");
        after_retype.on_output(b"\r\nRetype new password: ");
        assert!(after_retype.new_password_sent());
        assert_eq!(after_retype.on_end(Some(0)), DialogStep::Succeeded);

        let mut unknown = PasswdDialog::new(&PromptSet::default());
        unknown.on_output(BANNER_AND_CURRENT.as_bytes());
        unknown.on_output(b"\r\nNew password: ");
        unknown.on_output(b"\r\nRetype new password: ");
        let verdict = unknown.on_end(None);
        assert!(matches!(
            verdict,
            DialogStep::Failed(DialogFailure::OutcomeUnknown { .. })
        ));

        let mut wrong_current = PasswdDialog::new(&PromptSet::default());
        wrong_current.on_output(BANNER_AND_CURRENT.as_bytes());
        wrong_current.on_output(b"\r\npasswd: Authentication token manip");
        assert_eq!(
            wrong_current.on_end(Some(10)),
            DialogStep::Failed(DialogFailure::Refused {
                message: "passwd ended (exit status 10) before asking for the new password: passwd: Authentication token manip".to_owned()
            })
        );
    }

    #[test]
    fn timeout_is_certain_only_before_the_new_password_was_sent() {
        let mut early = PasswdDialog::new(&PromptSet::default());
        early.on_output(b"Changing password for app1.\r\n");
        let failure = early.on_timeout();
        assert_eq!(
            failure,
            DialogFailure::TimedOutBeforeChange {
                waiting_for: "passwd's first prompt"
            }
        );
        assert!(failure.is_certain_before_change());

        let mut late = PasswdDialog::new(&PromptSet::default());
        late.on_output(BANNER_AND_CURRENT.as_bytes());
        late.on_output(b"\r\nNew password: ");
        let failure = late.on_timeout();
        assert!(!failure.is_certain_before_change(), "{failure:?}");
    }

    #[test]
    fn prompt_sets_deserialize_with_defaults_and_reject_unknown_fields() {
        let custom: PromptSet =
            serde_json::from_str(r#"{"current_password_prompts": ["Old password:"]}"#)
                .expect("valid prompt set");
        assert_eq!(
            custom.current_password_prompts,
            vec!["Old password:".to_owned()]
        );
        assert_eq!(
            custom.new_password_prompts,
            PromptSet::default().new_password_prompts
        );
        assert!(serde_json::from_str::<PromptSet>(r#"{"current_prompt": []}"#).is_err());

        let mut dialog = PasswdDialog::new(&custom);
        assert_eq!(
            dialog.on_output(b"Old password: "),
            send(Answer::CurrentPassword)
        );
    }

    #[test]
    fn validation_refuses_empty_patterns() {
        assert_eq!(PromptSet::default().validate(), Ok(()));
        let empty_pattern = PromptSet {
            success_messages: vec![String::new()],
            ..PromptSet::default()
        };
        assert!(
            empty_pattern
                .validate()
                .is_err_and(|message| message.contains("success_messages"))
        );
        let no_prompts = PromptSet {
            new_password_prompts: Vec::new(),
            ..PromptSet::default()
        };
        assert!(no_prompts.validate().is_err());
    }

    #[test]
    fn summaries_drop_control_characters_and_are_bounded() {
        assert_eq!(
            summarize("\x1b[0mhello\r\n\r\nworld\x07"),
            "[0mhello / world"
        );
        assert_eq!(
            summarize(&"x".repeat(1000)).chars().count(),
            MESSAGE_LIMIT_CHARS + 1
        );
        assert_eq!(summarize("\r\n"), "(no output)");
    }
}
