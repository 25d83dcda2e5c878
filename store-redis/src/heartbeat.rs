//! The hot path: heartbeats queued, gathered into batches and applied by
//! one script call per batch (group commit).
//!
//! The script ([`scripts::HEARTBEATS`](crate::scripts)) is core's heartbeat
//! rule ([`iamalive_core::heartbeat`]) in Lua, with the bounds of core's
//! [`LazyWindow`](iamalive_core::LazyWindow) passed in per heartbeat.

use std::sync::Arc;

use iamalive_core::{Heartbeat, HeartbeatOutcome, StoreError, Timestamp};
use redis::Cmd;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use crate::*;

/// A heartbeat waiting for its batch.
pub(crate) struct Pending {
    hb: Heartbeat,
    due_if_up: Timestamp,
    create: bool,
    done: oneshot::Sender<Result<HeartbeatOutcome, StoreError>>,
}

impl RedisStore {
    /// [`Store::record_heartbeat`](iamalive_core::Store::record_heartbeat):
    /// queued for the batcher, answered once its batch ran in Redis.
    pub(crate) async fn heartbeat(
        &self,
        hb: &Heartbeat,
        due_if_up: Timestamp,
        create: bool,
    ) -> Result<HeartbeatOutcome, StoreError> {
        let deadline = Instant::now() + self.c.timeout;
        let (done, answer) = oneshot::channel();
        let pending = Pending {
            hb: hb.clone(),
            due_if_up,
            create,
            done,
        };
        let stopped = || {
            StoreError::unavailable(
                STORE,
                "the heartbeat batcher has stopped (the Tokio runtime that built this store shut down)",
            )
        };
        match tokio::time::timeout_at(deadline, self.beats.send(pending)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(stopped()),
            Err(_) => return Err(timed_out(self.c.timeout)),
        }
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(stopped()),
            Err(_) => Err(timed_out(self.c.timeout)),
        }
    }
}

/// Gathers concurrent heartbeats into batches, each one script call:
/// under load a batch holds whatever queued while earlier batches were in
/// flight (group commit), so the per-call cost of a script is shared. A
/// caller is answered only after its batch ran in Redis.
pub(crate) async fn batcher(c: Conn, mut queue: mpsc::Receiver<Pending>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        // A slot first: what queues while every slot is taken joins the
        // next batch.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        // At least one heartbeat, then whatever else is queued.
        let mut batch = Vec::with_capacity(BATCH.min(16));
        if queue.recv_many(&mut batch, BATCH).await == 0 {
            return;
        }
        let c = c.clone();
        tokio::spawn(async move {
            run_batch(&c, batch).await;
            drop(slot);
        });
    }
}

/// The `EVALSHA` of [`scripts::HEARTBEATS`] for a batch, written straight
/// into one command buffer (no allocation per heartbeat).
fn heartbeats_cmd(keys: &Keys, batch: &[Pending]) -> Cmd {
    use std::io::Write as _;
    let prefix = keys.host.len();
    let extra = batch
        .iter()
        .map(|p| {
            usize::from(p.hb.message.is_some())
                + usize::from(p.hb.report.is_some())
                + usize::from(p.hb.group.is_some())
        })
        .sum::<usize>();
    let mut cmd = Cmd::with_capacity(
        8 + 5 * batch.len() + extra,
        128 + batch.len() * (prefix + 160),
    );
    cmd.arg("EVALSHA")
        .arg(scripts::HEARTBEATS.get_hash())
        .arg(3 + batch.len())
        .arg(&keys.due)
        .arg(&keys.hosts)
        .arg(&keys.up);
    let mut key = String::with_capacity(prefix + 64);
    key.push_str(&keys.host);
    for p in batch {
        key.truncate(prefix);
        key.push_str(p.hb.host.as_str());
        cmd.arg(key.as_bytes());
    }
    cmd.arg(prefix + 1).arg(&keys.members);
    let mut flags: Vec<u8> = Vec::with_capacity(48);
    let flag = |b: bool| if b { b'1' } else { b'0' };
    for p in batch {
        let hb = &p.hb;
        let half = iamalive_core::LazyWindow::new(hb.at, p.due_if_up).from;
        flags.clear();
        flags.extend([
            flag(p.create),
            flag(hb.message.is_some()),
            flag(hb.report.is_some()),
            flag(hb.group.is_some()),
        ]);
        let (at_ms, at_ns) = split_ms(hb.at);
        let _ = write!(flags, "{at_ms},{},{at_ns:06},", score(p.due_if_up));
        if let Some(i) = hb.interval {
            let _ = write!(flags, "{}", iamalive_core::beat::to_ms(i));
        }
        cmd.arg(ts_arg(hb.at).as_bytes())
            .arg(ts_arg(p.due_if_up).as_bytes())
            .arg(ts_arg(half).as_bytes())
            .arg(&flags[..]);
        if let Some(m) = &hb.message {
            cmd.arg(m.as_str());
        }
        if let Some(r) = &hb.report {
            cmd.arg(r.as_str());
        }
        if let Some(g) = &hb.group {
            cmd.arg(g.as_str());
        }
    }
    cmd
}

async fn run_batch(c: &Conn, batch: Vec<Pending>) {
    let cmd = heartbeats_cmd(&c.keys, &batch);
    let cmd = &cmd;
    // Safe to repeat: last_seen takes the later instant, and a second
    // version bump only invalidates swaps that were racing it anyway.
    let out: Result<Vec<u8>, StoreError> = c
        .call(true, |mut conn| {
            Box::pin(async move { eval(&mut conn, &scripts::HEARTBEATS, cmd).await })
        })
        .await;
    match out {
        Ok(out) if out.len() == batch.len() => {
            for (p, s) in batch.into_iter().zip(out) {
                let r = match s {
                    b'n' => Ok(HeartbeatOutcome::Unknown),
                    b'c' => Ok(HeartbeatOutcome::Created),
                    b'u' => Ok(HeartbeatOutcome::Updated { status: Status::Up }),
                    b'm' => Ok(HeartbeatOutcome::Updated {
                        status: Status::Missing,
                    }),
                    b'a' => Ok(HeartbeatOutcome::Updated {
                        status: Status::Alarmed,
                    }),
                    b'p' => Ok(HeartbeatOutcome::Updated {
                        status: Status::Paused,
                    }),
                    s => Err(StoreError::Corrupt {
                        store: STORE,
                        key: c.keys.host(&p.hb.host),
                        reason: format!("status starting with {:?}", char::from(s)),
                    }),
                };
                let _ = p.done.send(r);
            }
        }
        Ok(out) => {
            let why = format!(
                "heartbeat script answered {} results for {} heartbeats",
                out.len(),
                batch.len()
            );
            for p in batch {
                let _ = p.done.send(Err(StoreError::backend(STORE, why.clone())));
            }
        }
        Err(e) => {
            for p in batch {
                let _ = p.done.send(Err(e.replicate()));
            }
        }
    }
}
