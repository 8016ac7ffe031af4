//! `docs/benchmarks.md`: the machine a run measured on (cores, memory, kernel, Docker, date,
//! load) and the replacement of one benchmark's section between its markers
//! (`<!-- bench:NAME -->` … `<!-- /bench:NAME -->`), keeping every other section as it is.
//! Knows nothing of what is measured.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

const HEADER: &str =
    "# Rotor benchmarks\n\nMeasured figures, raw, with the machine they were measured on.\n";

/// Where the results go: `docs/benchmarks.md` at the repository root.
pub fn benchmarks_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/benchmarks.md")
}

fn first_line_of(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| {
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .next()
                .map(|line| line.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// The load average (1, 5, 15 minutes) as /proc/loadavg says.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// One line describing the machine and the moment: cores, memory, kernel, Docker, date, load.
pub fn machine() -> String {
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("MemTotal:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map_or("unknown memory".to_string(), |kib| {
            format!("{:.1} GiB", kib as f64 / 1_048_576.0)
        });
    format!(
        "{} cores, {memory}, kernel {}, Docker {}; {} (load average at start: {})",
        first_line_of("nproc", &[]),
        first_line_of("uname", &["-r"]),
        first_line_of("docker", &["version", "--format", "{{.Server.Version}}"]),
        first_line_of("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        load_average(),
    )
}

/// `text` with the section `name` replaced by `body` (appended when it is not there yet).
pub fn replace_section(text: &str, name: &str, body: &str) -> String {
    let begin = format!("<!-- bench:{name} -->");
    let end = format!("<!-- /bench:{name} -->");
    let block = format!("{begin}\n{}\n{end}", body.trim_end());
    match (text.find(&begin), text.find(&end)) {
        (Some(start), Some(stop)) if stop > start => {
            format!("{}{block}{}", &text[..start], &text[stop + end.len()..])
        }
        _ => format!("{}\n\n{block}\n", text.trim_end()),
    }
}

/// Writes `body` as section `name` of docs/benchmarks.md (created with a header if missing).
pub fn write_section(name: &str, body: &str) -> Result<PathBuf> {
    let path = benchmarks_file();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let existing = std::fs::read_to_string(&path).unwrap_or_else(|_| HEADER.to_string());
    std::fs::write(&path, replace_section(&existing, name, body))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// A Markdown table from a header and rows.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!(
        "| {} |\n|{}\n",
        header.join(" | "),
        " --- |".repeat(header.len())
    );
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_is_replaced_and_others_kept() {
        let doc = "# T\n\n<!-- bench:a -->\nold a\n<!-- /bench:a -->\n\n<!-- bench:b -->\nb\n<!-- /bench:b -->\n";
        let updated = replace_section(doc, "a", "new a\n");
        assert!(updated.contains("<!-- bench:a -->\nnew a\n<!-- /bench:a -->"));
        assert!(!updated.contains("old a"));
        assert!(updated.contains("<!-- bench:b -->\nb\n<!-- /bench:b -->"));
        let appended = replace_section(&updated, "c", "c");
        assert!(appended.ends_with("<!-- bench:c -->\nc\n<!-- /bench:c -->\n"));
        assert!(appended.contains("new a"));
    }

    #[test]
    fn tables_have_a_separator_row() {
        let text = table(&["a", "b"], &[vec!["1".into(), "2".into()]]);
        assert_eq!(text, "| a | b |\n| --- | --- |\n| 1 | 2 |\n");
    }
}
