//! Every `rotor` command and subcommand answers `-h`, `-help` and `--help` with its usage
//! and exit 0, through the same dispatch the binary runs (issue 21: `rotor server --help`
//! said "flag provided but not defined: -help"). The commands are the rows of
//! `commands::COMMANDS`, the table completions are generated from.

#[test]
fn every_command_answers_help_with_exit_zero() {
    let mut failures = Vec::new();
    // Every row of the command table, as a newcomer would type it before `-h`.
    for command in super::commands::COMMANDS {
        for asked in ["-h", "-help", "--help"] {
            let mut args: Vec<String> = command.words.iter().map(|word| word.to_string()).collect();
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
