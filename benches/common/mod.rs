//! Shared by the benches: every bench prints a ratio of two measurements taken
//! in the same run, because absolute times on a shared 2-core machine say little.

#![allow(dead_code)] // Each bench uses the helpers it needs.

use std::path::PathBuf;

/// Mean time in nanoseconds of the criterion benchmark `id` (as criterion names
/// its folder: `group/function[/parameter]`), read from the estimates criterion
/// wrote during this run.
pub fn mean_ns(id: &str) -> Option<f64> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let path = target
        .join("criterion")
        .join(id)
        .join("new")
        .join("estimates.json");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    json["mean"]["point_estimate"].as_f64()
}

/// Prints `ratio <label>: <baseline/candidate>` (how many times faster the
/// candidate is than the baseline), or says which measurement is missing.
pub fn print_ratio(label: &str, baseline_id: &str, candidate_id: &str) {
    match (mean_ns(baseline_id), mean_ns(candidate_id)) {
        (Some(baseline), Some(candidate)) if candidate > 0.0 => println!(
            "ratio {label}: {:.2} ({baseline_id} {:.3} ms / {candidate_id} {:.3} ms)",
            baseline / candidate,
            baseline / 1e6,
            candidate / 1e6
        ),
        _ => println!("ratio {label}: not measured (need both {baseline_id} and {candidate_id})"),
    }
}

/// Prints `overhead <label>: <(candidate - baseline) / baseline>`: how much the
/// candidate adds, in units of the baseline it contains.
pub fn print_overhead(label: &str, baseline_id: &str, candidate_id: &str) {
    match (mean_ns(baseline_id), mean_ns(candidate_id)) {
        (Some(baseline), Some(candidate)) if baseline > 0.0 => println!(
            "overhead {label}: {:.2}x the baseline ({baseline_id} {:.3} ms, {candidate_id} {:.3} ms)",
            (candidate - baseline) / baseline,
            baseline / 1e6,
            candidate / 1e6
        ),
        _ => println!("overhead {label}: not measured (need both {baseline_id} and {candidate_id})"),
    }
}
