//! What every binary answers before it does anything: `--help` and
//! `--version` exit 0 on stdout, an unknown option exits 2 on stderr.

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn run(exe: &Path, args: &[&str]) -> Output {
    Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        // Nothing from the environment may turn a flag into a run.
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .output()
        .unwrap_or_else(|e| panic!("{} could not start: {e}", exe.display()))
}

/// Runs `exe` (the binary called `name`, at `version`) with `--help`,
/// `-h`, `--version`, `-V` and an unknown option, and with `--help` after
/// each of `subcommands` (`&["backup"]`, `&["silence", "add"]`), and
/// asserts the exit codes and where the text went: help names the binary
/// on stdout, the version line is exactly `name version`, the unknown
/// option is named on stderr with exit 2.
pub fn assert_help_and_version(exe: &Path, name: &str, version: &str, subcommands: &[&[&str]]) {
    for flag in ["--help", "-h"] {
        let o = run(exe, &[flag]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(0), "{name} {flag}: {o:?}");
        assert!(out.contains(name), "{name} {flag} does not name it: {out}");
    }
    for flag in ["--version", "-V"] {
        let o = run(exe, &[flag]);
        assert_eq!(o.status.code(), Some(0), "{name} {flag}: {o:?}");
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            format!("{name} {version}"),
            "{name} {flag}"
        );
    }
    for sub in subcommands {
        let args: Vec<&str> = sub.iter().copied().chain(["--help"]).collect();
        let o = run(exe, &args);
        assert_eq!(o.status.code(), Some(0), "{name} {args:?}: {o:?}");
        assert!(!o.stdout.is_empty(), "{name} {args:?} printed no help");
    }
    let o = run(exe, &["--no-such-option"]);
    assert_eq!(o.status.code(), Some(2), "{name} --no-such-option: {o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--no-such-option"),
        "{name} does not name the unknown option: {o:?}"
    );
}
