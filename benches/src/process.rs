//! Processes a harness starts (a watcher binary, a Lambda function):
//! stopped when the harness is done with them, whichever way it is.

use std::process::{Child, Command, ExitStatus};

/// A child process sent `SIGTERM` and waited for when dropped, so a run
/// that fails half-way leaves nothing behind.
#[derive(Debug)]
pub struct Spawned {
    child: Child,
}

impl Spawned {
    /// Starts `cmd`.
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Self> {
        Ok(Self {
            child: cmd.spawn()?,
        })
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}
