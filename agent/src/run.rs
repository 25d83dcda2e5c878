//! `iamalive-agent run -- <command>`: a cron job wrapped in signals.
//!
//! The agent sends a start, runs the command with its output passed
//! through, and sends a success, or a failure whose reason is the exit
//! status and the tail of the command's output. The start and its end
//! share a run id, so overlapping runs of one job are told apart.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use rand::Rng;

/// How much of the command's output (its end) a failure carries, in bytes.
pub const TAIL_BYTES: usize = 800;

/// What the command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// Its exit code; a command killed by signal `n` counts as `128 + n`,
    /// one that could not be started as 127.
    pub code: u8,
    /// The last [`TAIL_BYTES`] of its standard output and error, as they
    /// interleaved, lossily decoded; starts at a line where it can.
    pub tail: String,
}

impl Finished {
    /// The reason a failure reports: `exit status 3: <tail>`.
    pub fn reason(&self) -> String {
        let tail = self.tail.trim();
        if tail.is_empty() {
            format!("exit status {}", self.code)
        } else {
            format!("exit status {}: {tail}", self.code)
        }
    }
}

/// A random run id in UUID (version 4) form.
pub fn new_rid() -> String {
    let b: [u8; 16] = rand::rng().random();
    let mut b = b;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Runs `argv` (program and arguments, no shell) to its end, passing its
/// output through to ours and keeping the tail.
pub fn run(argv: &[String]) -> Finished {
    let Some((program, args)) = argv.split_first() else {
        return Finished {
            code: 127,
            tail: "no command given".into(),
        };
    };
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            return Finished {
                code: 127,
                tail: format!("could not start {program}: {e}"),
            };
        }
    };
    let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_BYTES)));
    let out = child
        .stdout
        .take()
        .map(|s| pump(s, io::stdout(), tail.clone()));
    let err = child
        .stderr
        .take()
        .map(|s| pump(s, io::stderr(), tail.clone()));
    let status = child.wait();
    for t in [out, err].into_iter().flatten() {
        let _ = t.join();
    }
    let bytes: Vec<u8> = tail
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .copied()
        .collect();
    Finished {
        code: match status {
            Ok(s) => exit_code(s),
            Err(_) => 127,
        },
        tail: tail_text(&bytes),
    }
}

fn pump(
    mut from: impl Read + Send + 'static,
    mut to: impl Write + Send + 'static,
    tail: Arc<Mutex<VecDeque<u8>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let _ = to.write_all(&buf[..n]);
            let _ = to.flush();
            let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
            t.extend(&buf[..n]);
            let excess = t.len().saturating_sub(TAIL_BYTES);
            t.drain(..excess);
        }
    })
}

fn exit_code(s: ExitStatus) -> u8 {
    if let Some(c) = s.code() {
        return u8::try_from(c & 0xff).unwrap_or(1);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = s.signal() {
            return u8::try_from(128 + sig).unwrap_or(255);
        }
    }
    1
}

/// The tail as text: lossily decoded, cut to start at a line when a line
/// break falls in its first half.
fn tail_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_start_matches('\u{fffd}');
    match text.find('\n') {
        Some(i) if i < text.len() / 2 && bytes.len() >= TAIL_BYTES => text[i + 1..].to_owned(),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    #[test]
    fn exit_status_and_tail() {
        let f = run(&sh("echo starting; echo 'disk full' >&2; exit 3"));
        assert_eq!(f.code, 3);
        assert!(
            f.tail.contains("starting") && f.tail.contains("disk full"),
            "{f:?}"
        );
        assert!(f.reason().starts_with("exit status 3: "), "{}", f.reason());
        let ok = run(&sh("true"));
        assert_eq!((ok.code, ok.tail.as_str()), (0, ""));
    }

    #[test]
    fn only_the_tail_is_kept() {
        let f = run(&sh(
            "i=0; while [ $i -lt 500 ]; do echo line-$i; i=$((i+1)); done; exit 1",
        ));
        assert!(f.tail.len() <= TAIL_BYTES, "{}", f.tail.len());
        assert!(f.tail.ends_with("line-499\n"), "{:?}", f.tail);
        assert!(
            f.tail.starts_with("line-"),
            "starts at a line: {:?}",
            &f.tail[..20]
        );
        assert!(!f.tail.contains("line-0\n"));
    }

    #[test]
    fn a_command_that_cannot_start_or_is_killed() {
        let f = run(&["/nonexistent/iamalive-test".to_owned()]);
        assert_eq!(f.code, 127);
        assert!(f.reason().contains("could not start"), "{}", f.reason());
        let k = run(&sh("kill -TERM $$"));
        assert_eq!(k.code, 128 + 15);
    }

    #[test]
    fn run_ids_look_like_uuids() {
        let a = new_rid();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert_ne!(a, new_rid());
    }
}
