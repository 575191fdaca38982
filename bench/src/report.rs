//! Result files: one JSON document per scenario under the output directory, plus the
//! one-line summary printed on stdout.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Value, json};

use crate::machine::{Machine, load_average};

/// Writes `<out>/<scenario>.json` with the machine, the configuration and the results, and
/// prints `<scenario>: <summary>`. Returns the file written.
///
/// # Errors
/// When the directory or the file cannot be written.
pub fn write(
    out: &Path,
    scenario: &str,
    machine: &Machine,
    config: Value,
    results: Value,
    summary: &str,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let path = out.join(format!("{scenario}.json"));
    let document = json!({
        "scenario": scenario,
        "finished_at": chrono::Utc::now().to_rfc3339(),
        "summary": summary,
        "machine": machine,
        "load_average_after": load_average(),
        "config": config,
        "results": results,
    });
    let text = serde_json::to_string_pretty(&document)?;
    std::fs::write(&path, text + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("{scenario}: {summary}");
    Ok(path)
}
