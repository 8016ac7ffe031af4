//! The table of every `rotor` command line: its words (`token create`), a one-line summary
//! and the flag table its parser reads (the same `FlagSpec` slices `parse_or_help` parses
//! and prints). Shell completions are generated from it (`completion.rs`) and the help tests
//! walk it, so a command added to the dispatch without a row here is caught by a test.
//!
//! Must not parse or run anything: `cli::main` and each command's module do.

use super::flags::FlagSpec;
use super::{audit, lease, path_help, plugin, policy, rotation, secrets, ssh, token};

/// One command line the dispatch accepts.
#[derive(Debug, Clone, Copy)]
pub struct CommandSpec {
    /// The words that name it after `rotor` (`["token", "create"]`).
    pub words: &'static [&'static str],
    /// One line, shown beside the word in zsh's completion menu.
    pub summary: &'static str,
    /// The flags its parser declares; empty for a group (`token`) that only has subcommands.
    pub flags: &'static [FlagSpec],
}

const fn command(
    words: &'static [&'static str],
    summary: &'static str,
    flags: &'static [FlagSpec],
) -> CommandSpec {
    CommandSpec {
        words,
        summary,
        flags,
    }
}

/// Every command line, groups before their subcommands.
pub const COMMANDS: &[CommandSpec] = &[
    command(
        &["server"],
        "run the controller (-dev or -config FILE)",
        super::SERVER_FLAGS,
    ),
    command(&["operator"], "operator commands (init)", &[]),
    command(
        &["operator", "init"],
        "create the seal key, store, CA and root token",
        super::INIT_FLAGS,
    ),
    command(&["read"], "read data at PATH", super::COMMON_FLAGS),
    command(&["write"], "write data to PATH", super::COMMON_FLAGS),
    command(&["list"], "list keys under PATH", super::COMMON_FLAGS),
    command(&["delete"], "delete data at PATH", super::COMMON_FLAGS),
    command(&["path-help"], "show a path's help", path_help::FLAGS),
    command(&["login"], "check a token and keep it", token::LOGIN_FLAGS),
    command(&["token"], "create, look up, renew and revoke tokens", &[]),
    command(&["token", "create"], "create a token", token::CREATE_FLAGS),
    command(&["token", "lookup"], "look up a token", token::LOOKUP_FLAGS),
    command(&["token", "renew"], "renew a token", token::RENEW_FLAGS),
    command(&["token", "revoke"], "revoke a token", token::REVOKE_FLAGS),
    command(
        &["policy"],
        "write, read, list and delete ACL policies",
        &[],
    ),
    command(&["policy", "write"], "write a policy", policy::FLAGS),
    command(&["policy", "read"], "read a policy", policy::FLAGS),
    command(&["policy", "list"], "list policies", policy::FLAGS),
    command(&["policy", "delete"], "delete a policy", policy::FLAGS),
    command(&["lease"], "look up, renew and revoke leases", &[]),
    command(&["lease", "lookup"], "look up a lease", lease::FLAGS),
    command(&["lease", "renew"], "renew a lease", lease::FLAGS),
    command(&["lease", "revoke"], "revoke a lease", lease::FLAGS),
    command(&["renew"], "renew a lease (older spelling)", lease::FLAGS),
    command(&["revoke"], "revoke a lease (older spelling)", lease::FLAGS),
    command(
        &["secrets"],
        "enable, list and disable secrets engines",
        &[],
    ),
    command(
        &["secrets", "enable"],
        "enable a secrets engine",
        secrets::ENABLE_FLAGS,
    ),
    command(
        &["secrets", "list"],
        "list secrets engines",
        secrets::LIST_FLAGS,
    ),
    command(
        &["secrets", "disable"],
        "disable a secrets engine",
        secrets::DISABLE_FLAGS,
    ),
    command(
        &["mount"],
        "enable a secrets engine (older spelling)",
        secrets::ENABLE_FLAGS,
    ),
    command(&["audit"], "enable, list and disable audit devices", &[]),
    command(
        &["audit", "enable"],
        "enable an audit device",
        audit::ENABLE_FLAGS,
    ),
    command(&["audit", "list"], "list audit devices", audit::LIST_FLAGS),
    command(
        &["audit", "disable"],
        "disable an audit device",
        audit::DISABLE_FLAGS,
    ),
    command(&["plugin"], "accepted for built-in engines", &[]),
    command(
        &["plugin", "register"],
        "register a built-in engine (changes nothing)",
        plugin::REGISTER_FLAGS,
    ),
    command(&["rotation"], "watch a fleet rotation", &[]),
    command(
        &["rotation", "watch"],
        "watch a fleet rotation in waves",
        rotation::FLAGS,
    ),
    command(&["ssh"], "log in with a one-time password", ssh::FLAGS),
    command(
        &["completion"],
        "print a shell completion script (bash or zsh)",
        &[],
    ),
    command(&["version"], "print Rotor's version", &[]),
    command(&["help"], "list the commands", &[]),
];

/// The words that may follow `words` (`["token"]` → create, lookup, renew, revoke).
pub fn subcommands_of(words: &[&str]) -> Vec<&'static str> {
    COMMANDS
        .iter()
        .filter(|command| {
            command.words.len() == words.len() + 1 && command.words.starts_with(words)
        })
        .filter_map(|command| command.words.last().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command `rotor help` lists has a row, so completions and help tests see it.
    #[test]
    fn every_command_in_the_help_text_is_in_the_table() {
        let listed = super::super::HELP
            .split("Commands:")
            .nth(1)
            .expect("HELP has a Commands: section")
            .lines()
            .filter(|line| line.starts_with("    ") && !line.starts_with("     "))
            .filter_map(|line| line.split_whitespace().next());
        for word in listed {
            assert!(
                COMMANDS.iter().any(|command| command.words[0] == word),
                "`rotor help` lists `{word}`, which has no row in cli/commands.rs"
            );
        }
    }

    #[test]
    fn every_subcommand_has_its_group() {
        for command in COMMANDS {
            if let Some((_, group)) = command.words.split_last()
                && !group.is_empty()
            {
                assert!(
                    COMMANDS.iter().any(|row| row.words == group),
                    "{:?} has no row for its group {group:?}",
                    command.words
                );
            }
        }
    }

    #[test]
    fn no_command_or_flag_is_declared_twice() {
        for (index, command) in COMMANDS.iter().enumerate() {
            assert!(
                !COMMANDS[..index]
                    .iter()
                    .any(|earlier| earlier.words == command.words),
                "{:?} twice",
                command.words
            );
            for (flag_index, flag) in command.flags.iter().enumerate() {
                assert!(
                    !command.flags[..flag_index]
                        .iter()
                        .any(|earlier| earlier.name == flag.name),
                    "{:?}: -{} twice",
                    command.words,
                    flag.name
                );
            }
        }
    }

    #[test]
    fn groups_list_their_subcommands() {
        assert_eq!(
            subcommands_of(&["token"]),
            ["create", "lookup", "renew", "revoke"]
        );
        assert_eq!(subcommands_of(&["operator"]), ["init"]);
        assert!(subcommands_of(&["read"]).is_empty());
    }
}
