//! The `rotor` binary: hands its arguments to the CLI and exits with its code.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(rotor_controller::cli::main(args));
}
