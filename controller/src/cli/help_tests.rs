//! Every `rotor` command and subcommand answers `-h`, `-help` and `--help` with its usage
//! and exit 0, through the same dispatch the binary runs (issue 21: `rotor server --help`
//! said "flag provided but not defined: -help").

/// Each command line that takes flags, as a newcomer would type it before `-h`.
const COMMANDS: &[&[&str]] = &[
    &["server"],
    &["operator"],
    &["operator", "init"],
    &["read"],
    &["write"],
    &["list"],
    &["delete"],
    &["path-help"],
    &["login"],
    &["token"],
    &["token", "create"],
    &["token", "lookup"],
    &["token", "renew"],
    &["token", "revoke"],
    &["policy"],
    &["policy", "write"],
    &["policy", "read"],
    &["policy", "list"],
    &["policy", "delete"],
    &["lease"],
    &["lease", "lookup"],
    &["lease", "renew"],
    &["lease", "revoke"],
    &["renew"],
    &["revoke"],
    &["rotation"],
    &["rotation", "watch"],
    &["ssh"],
    &["secrets"],
    &["secrets", "enable"],
    &["secrets", "list"],
    &["secrets", "disable"],
    &["mount"],
    &["audit"],
    &["audit", "enable"],
    &["audit", "list"],
    &["audit", "disable"],
    &["plugin"],
    &["plugin", "register"],
    &["auth"],
    &["auth", "enable"],
    &["auth", "list"],
    &["auth", "disable"],
    &["unwrap"],
];

#[test]
fn every_command_answers_help_with_exit_zero() {
    let mut failures = Vec::new();
    for command in COMMANDS {
        for asked in ["-h", "-help", "--help"] {
            let mut args: Vec<String> = command.iter().map(|word| word.to_string()).collect();
            args.push(asked.to_string());
            let code = super::main(args.clone());
            if code != 0 {
                failures.push(format!("rotor {} exited {code}", args.join(" ")));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn an_unknown_flag_is_still_an_error() {
    let args = ["server", "-bogus"].map(String::from).to_vec();
    assert_eq!(super::main(args), 1);
}
