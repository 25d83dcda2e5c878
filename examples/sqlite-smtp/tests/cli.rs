//! The binary as an operator meets it: `--help` and `--version` exit 0,
//! logs written to a file carry no colour codes, `IAMALIVE_LOG_FORMAT=json`
//! writes one JSON object a line, and a log setting that would print
//! nothing (`IAMALIVE_LOG=json`) or an unknown format stops it at start.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use iamalive_testkit::free_port;

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sqlite-smtp"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("IAMALIVE_")) {
        cmd.env_remove(k);
    }
    cmd.env_remove("NO_COLOR").stdin(Stdio::null());
    cmd
}

#[test]
fn help_and_version_exit_zero() {
    iamalive_testkit::assert_help_and_version(
        std::path::Path::new(env!("CARGO_BIN_EXE_sqlite-smtp")),
        "sqlite-smtp",
        env!("CARGO_PKG_VERSION"),
        &[&["backup"]],
    );
    let help = bin().arg("--help").output().unwrap();
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("usage: sqlite-smtp") && text.contains("--test-notice"));
    let version = bin().arg("--version").output().unwrap();
    assert_eq!(version.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("sqlite-smtp {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn a_log_setting_that_would_print_nothing_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (k, v, needle) in [
        ("IAMALIVE_LOG", "json", "IAMALIVE_LOG_FORMAT"),
        ("IAMALIVE_LOG_FORMAT", "yaml", "IAMALIVE_LOG_FORMAT"),
        ("IAMALIVE_LOG", "info,[", "IAMALIVE_LOG"),
    ] {
        let out = bin().current_dir(dir.path()).env(k, v).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{k}={v}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{k}={v}: {err}");
    }
}

/// Runs the watcher until it listens, stops it, returns what it logged.
fn logged(extra: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = dir.path().join("log.txt");
    let mut cmd = bin();
    cmd.current_dir(dir.path())
        .env("IAMALIVE_LISTEN", format!("127.0.0.1:{port}"))
        .env("IAMALIVE_API_KEYS", "cli-test-key-0123456789")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    // Until it says it is watching (listening alone comes a moment before
    // the line, and before the signal handlers are in place).
    let start = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("iamalive is watching")
    {
        assert!(start.elapsed() < Duration::from_secs(30), "not watching");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    std::fs::read_to_string(&log).unwrap()
}

#[test]
fn logs_in_a_file_are_plain_text_or_json_lines() {
    let text = logged(&[]);
    assert!(text.contains("iamalive is watching"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "no ANSI escapes in a file: {text:?}"
    );

    let json = logged(&[("IAMALIVE_LOG_FORMAT", "json")]);
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "iamalive is watching" && l["level"] == "INFO"),
        "{json}"
    );
}
