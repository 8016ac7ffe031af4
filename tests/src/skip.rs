//! The one way to skip end-to-end tests: `ROTOR_E2E=skip`, announced loudly.
//! Never skips for any other reason; a missing Docker or image is a failure.

use std::io::Write;

/// True when `ROTOR_E2E=skip` is set. Prints a banner naming `test_name` straight to
/// the process's stderr (not libtest's captured output), so the skip is always seen.
pub fn skip_requested(test_name: &str) -> bool {
    match std::env::var("ROTOR_E2E").as_deref() {
        Ok("skip") => {
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED end-to-end test `{test_name}`: ROTOR_E2E=skip is set; \
                 nothing was checked ***\n"
            );
            true
        }
        _ => false,
    }
}
