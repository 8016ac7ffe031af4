//! Logging in once the host key is verified: password first, keyboard-interactive when the
//! server takes passwords only that way. Decides nothing about rotation; the password goes
//! only into SSH authentication messages.

use std::time::Duration;

use rotor_common::secret::Password;
use russh::MethodKind;
use russh::client::{AuthResult, KeyboardInteractiveAuthResponse};
use tokio::time::timeout;

use crate::exec::host_key::{CheckedSession, HostKeyVerified};
use crate::exec::{BeforeChangeReason, ExecError};

/// Keyboard-interactive rounds answered before giving up on a chatty server.
const KEYBOARD_INTERACTIVE_ROUNDS: usize = 8;

/// Answer of [`HostConnection::try_login`](crate::exec::HostConnection::try_login): the server's verdict on a password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginCheck {
    Accepted,
    Rejected,
}

/// Password first; keyboard-interactive only when the server does not take passwords that
/// way (so a wrong password costs one failed attempt, not two).
pub(crate) async fn authenticate(
    session: &mut CheckedSession,
    _verified: &HostKeyVerified,
    host: &str,
    user: &str,
    password: &Password,
    step_timeout: Duration,
) -> Result<LoginCheck, ExecError> {
    let timed_out = |method: &str| {
        ExecError::before_change(
            host,
            BeforeChangeReason::Timeout {
                step: format!("authenticating as {user} ({method})"),
            },
            "",
        )
    };
    let lost = |detail: String| {
        ExecError::before_change(
            host,
            BeforeChangeReason::Connect,
            format!("the connection failed during authentication as {user}: {detail}"),
        )
    };
    let attempt = timeout(
        step_timeout,
        session.authenticate_password(user, password.expose()),
    )
    .await;
    let remaining_methods = match attempt {
        Err(_) => return Err(timed_out("password")),
        Ok(Err(error)) => return Err(lost(error.to_string())),
        Ok(Ok(AuthResult::Success)) => return Ok(LoginCheck::Accepted),
        Ok(Ok(AuthResult::Failure {
            remaining_methods, ..
        })) => remaining_methods,
    };
    // russh reports a dropped connection as a failure with no methods left: that is not a
    // verdict on the password.
    if remaining_methods.is_empty() {
        return Err(lost("the server closed the connection".to_owned()));
    }
    if remaining_methods.contains(&MethodKind::Password)
        || !remaining_methods.contains(&MethodKind::KeyboardInteractive)
    {
        return Ok(LoginCheck::Rejected);
    }

    let mut response = match timeout(
        step_timeout,
        session.authenticate_keyboard_interactive_start(user, None),
    )
    .await
    {
        Err(_) => return Err(timed_out("keyboard-interactive")),
        Ok(Err(error)) => return Err(lost(error.to_string())),
        Ok(Ok(response)) => response,
    };
    let mut password_sent = false;
    for _ in 0..KEYBOARD_INTERACTIVE_ROUNDS {
        let prompts = match response {
            KeyboardInteractiveAuthResponse::Success => return Ok(LoginCheck::Accepted),
            KeyboardInteractiveAuthResponse::Failure {
                remaining_methods, ..
            } => {
                if remaining_methods.is_empty() {
                    return Err(lost("the server closed the connection".to_owned()));
                }
                return Ok(LoginCheck::Rejected);
            }
            KeyboardInteractiveAuthResponse::InfoRequest { prompts, .. } => prompts,
        };
        let answers = match prompts.as_slice() {
            // OpenSSH ends PAM conversations with an empty request: answer it with nothing.
            [] => Vec::new(),
            [only] if !only.echo && !password_sent => {
                password_sent = true;
                vec![password.expose().to_owned()]
            }
            // Asked for the password a second time: the first was refused.
            [only] if !only.echo => return Ok(LoginCheck::Rejected),
            other => {
                let texts: Vec<String> = other
                    .iter()
                    .map(|prompt| rotor_common::names::quote_for_message(&prompt.prompt))
                    .collect();
                return Err(ExecError::before_change(
                    host,
                    BeforeChangeReason::SessionRefused {
                        what: format!(
                            "keyboard-interactive login asked for more than a password: {}",
                            texts.join(", ")
                        ),
                    },
                    "",
                ));
            }
        };
        response = match timeout(
            step_timeout,
            session.authenticate_keyboard_interactive_respond(answers),
        )
        .await
        {
            Err(_) => return Err(timed_out("keyboard-interactive")),
            Ok(Err(error)) => return Err(lost(error.to_string())),
            Ok(Ok(response)) => response,
        };
    }
    Err(ExecError::before_change(
        host,
        BeforeChangeReason::SessionRefused {
            what: "keyboard-interactive login did not finish".to_owned(),
        },
        "",
    ))
}
