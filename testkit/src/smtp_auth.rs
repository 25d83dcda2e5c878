//! An SMTP server (aiosmtpd) that requires AUTH with one user and password,
//! for testing accepted and refused credentials.

use crate::{Server, free_port, venv_python};

const SCRIPT: &str = r#"
import asyncio, sys
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from aiosmtpd.handlers import Mailbox

port, maildir, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]

def authenticator(server, session, envelope, mechanism, data):
    ok = (isinstance(data, LoginPassword)
          and data.login == user.encode() and data.password == password.encode())
    # handled=False: aiosmtpd itself answers "535 5.7.8 Authentication credentials invalid".
    return AuthResult(success=ok, handled=False)

handler = Mailbox(maildir)

async def main():
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(
        lambda: SMTP(handler, authenticator=authenticator, auth_required=True,
                     auth_require_tls=False),
        "127.0.0.1", port)
    async with srv:
        await srv.serve_forever()

asyncio.run(main())
"#;

/// aiosmtpd on a free port that accepts mail only after AUTH (PLAIN or
/// LOGIN, over plain SMTP) as `user` / `password`, storing each message as
/// a file in [`Server::maildir_new`].
pub fn smtp_with_auth(user: &str, password: &str) -> Server {
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let mail = dir.path().join("mail");
    let mut cmd = venv_python("aiosmtpd");
    cmd.arg("-c")
        .arg(SCRIPT)
        .arg(port.to_string())
        .arg(&mail)
        .arg(user)
        .arg(password)
        .current_dir(dir.path());
    Server::spawn(cmd, port, dir, "aiosmtpd with AUTH")
}
