//! The `zoomd` binary's commands as an operator runs them.

use std::path::PathBuf;

use crate::helpers::{output_ok, zoomd};

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("daemon.toml")
}

#[test]
fn check_lists_next_occurrences_in_local_and_utc() {
    let out = output_ok(
        zoomd()
            .args([
                "check",
                "--next",
                "2",
                "--from",
                "2026-11-28T00:00:00Z",
                "--config",
            ])
            .arg(example()),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("weekly-standup"), "{stdout}");
    assert!(
        stdout.contains("2026-11-30T09:00:00+01:00  Mon CET  2026-11-30T08:00:00Z"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2027-01-19T14:00:00-05:00  Tue EST  2027-01-19T19:00:00Z"),
        "{stdout}"
    );
    // The example's secret file does not exist here: a warning, not a failure.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warning: credentials"), "{stderr}");
}

#[test]
fn check_on_a_zone_typo_exits_2_with_place_and_suggestion() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(example()).expect("read");
    let bad = text.replacen(
        "timezone = \"Europe/Berlin\"",
        "timezone = \"Europe/Berln\"",
        1,
    );
    assert_ne!(bad, text);
    let path = dir.path().join("daemon.toml");
    std::fs::write(&path, &bad).expect("write");
    let (line, col) = bad
        .lines()
        .enumerate()
        .find_map(|(i, l)| l.find("\"Europe/Berln\"").map(|c| (i + 1, c + 1)))
        .expect("typo line");
    let out = zoomd()
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "{}:{line}:{col}: unknown timezone 'Europe/Berln'; did you mean 'Europe/Berlin'?",
        path.display()
    );
    assert!(
        stderr.starts_with(&expected),
        "{stderr}\nexpected: {expected}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn config_path_comes_from_the_environment_when_not_given() {
    output_ok(zoomd().arg("check").env("ZOOMD_CONFIG", example()));
    // And a missing file is an invalid-config exit naming the path.
    let out = zoomd()
        .arg("check")
        .env("ZOOMD_CONFIG", "/nonexistent/daemon.toml")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("/nonexistent/daemon.toml: cannot read")
    );
}
