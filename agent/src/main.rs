//! The `rotor-agent` binary: `enroll` and `run`. Parses arguments, sets up logging and the
//! runtime, and hands over to the library; exit codes: 0 ok, 1 failure, 3 refused for good.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use rotor_common::secret::Password;

/// Where the agent keeps its identity and journal unless `--dir` says otherwise.
const DEFAULT_DIR: &str = "/var/lib/rotor-agent";

#[derive(Parser)]
#[command(
    name = "rotor-agent",
    version,
    about = "Rotor's agent: rotates passwords on the hosts it can reach"
)]
struct Cli {
    /// Log format: standard or json.
    #[arg(long, global = true, default_value = "standard")]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enroll this agent with a controller using a one-time token.
    Enroll {
        /// The controller's agent address, host:port (from `rotor write agents/enroll`).
        #[arg(long)]
        controller: String,
        /// The one-time enrollment token (or set ROTOR_ENROLL_TOKEN to keep it off the command line).
        #[arg(long, env = "ROTOR_ENROLL_TOKEN", hide_env_values = true)]
        token: String,
        /// The controller CA's SHA-256 fingerprint, as printed with the token.
        #[arg(long)]
        ca_fingerprint: String,
        /// Where the agent keeps its key, certificate and journal [default: /var/lib/rotor-agent,
        /// said on stderr when used].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Replace an existing identity in --dir.
        #[arg(long)]
        force: bool,
    },
    /// Connect to the controller and serve jobs until SIGTERM.
    Run {
        #[arg(long, default_value = DEFAULT_DIR)]
        dir: PathBuf,
    },
    /// sshd's PAM helper (pam_exec.so expose_authtok): verify the OTP on stdin with the
    /// controller; exit 0 only when it is accepted.
    OtpVerify {
        #[arg(long, default_value = DEFAULT_DIR)]
        dir: PathBuf,
        /// Report whether the identity and controller are usable and what the PAM stack does
        /// with a failed OTP, instead of verifying.
        #[arg(long)]
        check: bool,
        /// The PAM stack to inspect with --check.
        #[arg(long, default_value = "/etc/pam.d/sshd")]
        pam_file: PathBuf,
        /// Where account locks and expiry are read from.
        #[arg(long, default_value = "/etc/shadow")]
        shadow_file: PathBuf,
    },
}

fn init_logging(format: &str) -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("ROTOR_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,quinn=warn,rustls=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only where a person reads them: never into a file or a journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        "json" => builder.json().init(),
        "standard" => builder.init(),
        other => {
            return Err(format!(
                "invalid --log-format '{other}': use standard or json"
            ));
        }
    }
    Ok(())
}

async fn wait_for_signal(stop: tokio::sync::watch::Sender<bool>) {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
        }
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the agent");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("stop requested");
    let _ = stop.send(true);
}

fn main() {
    rotor_agent::metrics::mark_start();
    let cli = Cli::parse();
    if let Err(message) = init_logging(&cli.log_format) {
        eprintln!("Error: {message}");
        std::process::exit(1);
    }
    rotor_common::tls::install_crypto_provider();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("Error: starting the async runtime: {error}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::Enroll {
                controller,
                token,
                ca_fingerprint,
                dir,
                force,
            } => {
                let dir = dir.unwrap_or_else(|| {
                    // Enrolling writes a key; where it went must not be a surprise.
                    eprintln!(
                        "note: --dir not given; keeping this agent's identity in {DEFAULT_DIR} (rotor-agent run reads it from there too)"
                    );
                    PathBuf::from(DEFAULT_DIR)
                });
                match rotor_agent::enroll::enroll(
                    &controller,
                    Password::new(token),
                    &ca_fingerprint,
                    &dir,
                    force,
                )
                .await
                {
                    Ok(state) => {
                        println!("agent_id: {}", state.agent_id);
                        println!("site: {}", state.site);
                        println!("dir: {}", dir.display());
                        0
                    }
                    Err(error) => {
                        eprintln!("Error: {error}");
                        1
                    }
                }
            }
            Command::OtpVerify {
                dir,
                check,
                pam_file,
                shadow_file,
            } => {
                if check {
                    let (report, usable) = rotor_agent::otp::check(&dir, &pam_file).await;
                    print!("{report}");
                    return if usable { 0 } else { 1 };
                }
                match rotor_agent::otp::verify(&dir, &shadow_file).await {
                    rotor_agent::otp::Verdict::Accepted => 0,
                    rotor_agent::otp::Verdict::Refused(reason) => {
                        eprintln!("rotor-agent otp-verify: refused: {reason}");
                        1
                    }
                }
            }
            Command::Run { dir } => {
                let (stop, stopped) = tokio::sync::watch::channel(false);
                tokio::spawn(wait_for_signal(stop));
                match rotor_agent::link::run(&dir, stopped).await {
                    Ok(()) => 0,
                    Err(error @ rotor_agent::link::LinkError::PermanentlyRefused { .. }) => {
                        eprintln!("Error: {error}");
                        3
                    }
                    Err(error) => {
                        eprintln!("Error: {error}");
                        1
                    }
                }
            }
        }
    });
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::Cli;

    #[test]
    fn every_subcommand_answers_help() {
        Cli::command().debug_assert();
        for command in [&[][..], &["enroll"], &["run"], &["otp-verify"]] {
            for asked in ["-h", "--help"] {
                let mut args = vec!["rotor-agent"];
                args.extend_from_slice(command);
                args.push(asked);
                let error = Cli::try_parse_from(&args)
                    .err()
                    .expect("help is not a command");
                assert_eq!(
                    error.kind(),
                    clap::error::ErrorKind::DisplayHelp,
                    "{args:?}: {error}"
                );
            }
        }
    }
}
