//! An SMTP server (aiosmtpd) speaking implicit TLS (SMTPS) from the first
//! byte, for testing `smtps://` clients.

use std::path::Path;

use crate::{Server, aiosmtpd, free_port};

/// aiosmtpd on a free port with implicit TLS using `cert` and `key` (PEM),
/// storing each message as a file in [`Server::maildir_new`].
pub fn smtps(cert: &Path, key: &Path) -> Server {
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = aiosmtpd(port, "aiosmtpd.handlers.Mailbox", dir.path());
    cmd.arg("--smtpscert")
        .arg(cert)
        .arg("--smtpskey")
        .arg(key)
        .arg(dir.path().join("mail"));
    Server::spawn(cmd, port, dir, "aiosmtpd (SMTPS)")
}
