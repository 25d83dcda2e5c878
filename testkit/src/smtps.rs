//! An SMTP server (aiosmtpd) speaking implicit TLS (SMTPS) from the first
//! byte, for testing `smtps://` clients.

use std::path::Path;
use std::process::Command;

use crate::{Server, free_port, venv};

/// aiosmtpd on a free port with implicit TLS using `cert` and `key` (PEM),
/// storing each message as a file in [`Server::maildir_new`].
pub fn smtps(cert: &Path, key: &Path) -> Server {
    let python = venv().join("bin").join("python");
    assert!(
        python.exists(),
        "the test virtualenv's python (with aiosmtpd) not found at {}: run ./scripts/test.sh",
        python.display()
    );
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let mail = dir.path().join("mail");
    let mut cmd = Command::new(python);
    cmd.args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg("--smtpscert")
        .arg(cert)
        .arg("--smtpskey")
        .arg(key)
        .arg(&mail)
        .current_dir(dir.path());
    Server::spawn(cmd, port, dir, "aiosmtpd (SMTPS)")
}
