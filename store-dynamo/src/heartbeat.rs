//! The hot path: one heartbeat, usually one conditional UpdateItem.
//!
//! Core's heartbeat rule ([`iamalive_core::heartbeat`]) as DynamoDB
//! expressions: an up host with nothing owed takes the fast path, which
//! keeps `dueAt` while it lies in core's [`LazyWindow`] (no index write),
//! or always when the host has a stored policy (the monitor arms its
//! `dueAt` from the policy); anything else reads, applies
//! [`apply_heartbeat`] and swaps.

use crate::*;

impl DynamoStore {
    /// [`Store::record_heartbeat`](iamalive_core::Store::record_heartbeat):
    /// the fast path when the host is known (or looks) up, else the slow.
    pub(crate) async fn heartbeat(
        &self,
        hb: &Heartbeat,
        due_if_up: Timestamp,
        create: bool,
    ) -> Result<HeartbeatOutcome, StoreError> {
        let host = hb.host.as_str();
        let mut plan = match self.hints.get(host) {
            Some(Known::Up(d)) => Plan::Fast {
                keep: if in_lazy_window(d, hb.at, due_if_up) {
                    Keep::Window(d)
                } else {
                    Keep::Rearm
                },
            },
            Some(Known::UpKeeping) => Plan::Fast { keep: Keep::Policy },
            Some(Known::Other) => Plan::Slow(None),
            // Nothing known here (a cold process, or a host it has not
            // heard of lately): look before writing.
            None => Plan::for_item(self.peek_item(host).await?, hb, due_if_up)?,
        };
        for _ in 0..MAX_ROUNDS {
            match plan {
                Plan::Fast { keep } => match self.fast_heartbeat(hb, due_if_up, keep).await? {
                    Ok(known) => {
                        self.hints.set(host, known);
                        return Ok(HeartbeatOutcome::Updated { status: Status::Up });
                    }
                    // The item was not as believed; it came back with the
                    // failure and says what to write instead.
                    Err(old) => plan = Plan::for_item(old, hb, due_if_up)?,
                },
                Plan::Slow(old) => return self.slow_heartbeat(hb, due_if_up, create, old).await,
            }
        }
        Err(StoreError::unavailable(
            STORE,
            format!("{}: heartbeat lost {MAX_ROUNDS} races in a row", hb.host),
        ))
    }

    /// The common heartbeat: an up host with no owed notice whose
    /// `lastSeen` is not later than the heartbeat. One UpdateItem.
    ///
    /// [`Keep::Window`] (the `dueAt` believed stored, inside the lazy
    /// window) leaves `dueAt` and `dueShard` alone, on condition that the
    /// stored `dueAt` lies in `[half_way, due_if_up]`: no index write.
    /// [`Keep::Rearm`] re-arms them to `due_if_up`. Both require that the
    /// host has no stored policy; [`Keep::Policy`] requires that it has
    /// one, and leaves `dueAt` whatever it is (core's rule: the monitor
    /// arms it from the policy, and it is early, never late; a flapping
    /// host likewise). Returns what
    /// the next heartbeat may assume, or on a failed condition the item as
    /// it was (if it exists).
    async fn fast_heartbeat(
        &self,
        hb: &Heartbeat,
        due_if_up: Timestamp,
        keep: Keep,
    ) -> Result<Result<Known, Option<Item>>, StoreError> {
        let host = hb.host.as_str();
        let mut set = String::from("SET #seen = :at, #v = #v + :one");
        // Core's `monitor_arms_due`: a stored policy or a flapping
        // episode.
        let armed = match keep {
            Keep::Policy => "(attribute_exists(#policy) OR attribute_exists(#flapping))",
            Keep::Window(_) | Keep::Rearm => {
                "attribute_not_exists(#policy) AND attribute_not_exists(#flapping)"
            }
        };
        let mut cond = format!(
            "attribute_exists(#pk) AND #status = :up AND attribute_not_exists(#outbox) AND {armed} AND #seen <= :at"
        );
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(host)))
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#outbox", OUTBOX)
            .expression_attribute_names("#policy", POLICY)
            .expression_attribute_names("#flapping", FLAPPING)
            .expression_attribute_names("#seen", LAST_SEEN)
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_values(":up", s(Status::Up.as_str()))
            .expression_attribute_values(":at", n_time(hb.at))
            .expression_attribute_values(":one", n(1))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        match keep {
            Keep::Window(_) => {
                cond.push_str(" AND #due BETWEEN :half AND :due");
                // ALL_NEW costs no capacity; it tells the hint the kept dueAt.
                req = req
                    .expression_attribute_names("#due", DUE_AT)
                    .expression_attribute_values(":due", n_time(due_if_up))
                    .expression_attribute_values(
                        ":half",
                        n_time(LazyWindow::new(hb.at, due_if_up).from),
                    )
                    .return_values(ReturnValue::AllNew);
            }
            Keep::Rearm => {
                set.push_str(", #due = :due, #shard = :shard");
                req = req
                    .expression_attribute_names("#due", DUE_AT)
                    .expression_attribute_names("#shard", DUE_SHARD)
                    .expression_attribute_values(":due", n_time(due_if_up))
                    .expression_attribute_values(":shard", s(shard_of(host, self.shards)));
            }
            Keep::Policy => {}
        }
        if let Some(m) = &hb.message {
            set.push_str(", #msg = :msg");
            req = req
                .expression_attribute_names("#msg", MESSAGE)
                .expression_attribute_values(":msg", s(m.clone()));
        }
        if let Some(r) = &hb.report {
            set.push_str(", #report = :report");
            req = req
                .expression_attribute_names("#report", REPORT)
                .expression_attribute_values(":report", s(r.clone()));
        }
        // The interval (core's `learn_interval`), in the same UpdateItem:
        // the sent one replaced, or the gap since the last beat learned
        // (`:at - lastSeen`, evaluated on the item as it was; the
        // condition holds `lastSeen <= :at` and the status up).
        let mut remove = "";
        match hb.interval {
            Some(i) => {
                set.push_str(", #iv = :iv");
                req = req
                    .expression_attribute_names("#iv", INTERVAL)
                    .expression_attribute_values(":iv", n(iamalive_core::beat::to_ms(i)));
            }
            None => {
                set.push_str(", #gap = :at - #seen, #pgap = if_not_exists(#gap, :zero)");
                remove = " REMOVE #iv";
                req = req
                    .expression_attribute_names("#iv", INTERVAL)
                    .expression_attribute_names("#gap", GAP)
                    .expression_attribute_names("#pgap", PREV_GAP)
                    .expression_attribute_values(":zero", n(0));
            }
        }
        if let Some(g) = &hb.group {
            // In the same UpdateItem: a group costs no write of its own.
            set.push_str(", #grp = :grp");
            req = req
                .expression_attribute_names("#grp", GROUP)
                .expression_attribute_values(":grp", s(g.as_str().to_owned()));
        }
        set.push_str(remove);
        match req
            .update_expression(set)
            .condition_expression(cond)
            .send()
            .await
        {
            Ok(out) => Ok(Ok(match keep {
                Keep::Window(believed) => Known::Up(
                    out.attributes
                        .as_ref()
                        .and_then(|a| opt_time(a, host, DUE_AT).ok().flatten())
                        .unwrap_or(believed),
                ),
                Keep::Rearm => Known::Up(due_if_up),
                Keep::Policy => Known::UpKeeping,
            })),
            Err(e) if is_condition_failed::<UpdateItemError, _>(&e) => {
                let old = match e.into_service_error() {
                    UpdateItemError::ConditionalCheckFailedException(c) => c.item,
                    _ => None,
                };
                Ok(Err(old))
            }
            Err(e) => Err(error::map(e)),
        }
    }

    /// The rare heartbeat: unknown, missing, alarmed, paused, a notice
    /// owed, or out of order. Read-modify-write with compare-and-swap,
    /// starting from `old` (read consistently when `None`).
    async fn slow_heartbeat(
        &self,
        hb: &Heartbeat,
        due_if_up: Timestamp,
        create: bool,
        mut old: Option<Item>,
    ) -> Result<HeartbeatOutcome, StoreError> {
        let host = hb.host.as_str();
        for round in 0..MAX_ROUNDS {
            if round > 0 || old.is_none() {
                old = self.get_item(host).await?;
            }
            match old.take() {
                None => {
                    if !create {
                        self.hints.forget(host);
                        return Ok(HeartbeatOutcome::Unknown);
                    }
                    let rec = created_by_heartbeat(hb, due_if_up);
                    if self.put_if_version(to_item(&rec, self.shards)?, 0).await? {
                        self.hints.set(host, Known::of(&rec));
                        return Ok(HeartbeatOutcome::Created);
                    }
                }
                Some(item) => {
                    let mut rec = from_item(&item)?;
                    let status = rec.status;
                    let expected = rec.version;
                    apply_heartbeat(&mut rec, hb, due_if_up);
                    if self
                        .put_if_version(to_item(&rec, self.shards)?, expected)
                        .await?
                    {
                        self.hints.set(host, Known::of(&rec));
                        return Ok(HeartbeatOutcome::Updated { status });
                    }
                }
            }
        }
        Err(StoreError::unavailable(
            STORE,
            format!("{}: heartbeat lost {MAX_ROUNDS} races in a row", hb.host),
        ))
    }
}

/// Whether a heartbeat at `at` may leave a stored `due` alone: core's
/// [`LazyWindow`], early by at most half a timeout, never late.
fn in_lazy_window(due: Timestamp, at: Timestamp, due_if_up: Timestamp) -> bool {
    LazyWindow::new(at, due_if_up).contains(due)
}

/// What the fast path does to `dueAt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// Re-arms it to `due_if_up` (no stored policy).
    Rearm,
    /// Keeps it, believed to be this instant inside the lazy window (no
    /// stored policy).
    Window(Timestamp),
    /// Keeps it, whatever it is: the monitor arms it (a stored policy or
    /// a flapping episode: core's `monitor_arms_due`).
    Policy,
}

/// Which write a heartbeat makes next.
#[derive(Debug)]
enum Plan {
    /// One UpdateItem for an up host with nothing owed (see [`Keep`]).
    Fast { keep: Keep },
    /// Read-modify-write with compare-and-swap from this item (`None`:
    /// read it consistently first).
    Slow(Option<Item>),
}

impl Plan {
    /// The write for a heartbeat to `item` as last read (`None`: absent, or
    /// not known).
    fn for_item(
        item: Option<Item>,
        hb: &Heartbeat,
        due_if_up: Timestamp,
    ) -> Result<Self, StoreError> {
        let Some(item) = item else {
            return Ok(Self::Slow(None));
        };
        let rec = from_item(&item)?;
        if rec.status == Status::Up && rec.outbox.is_none() && rec.last_seen <= hb.at {
            // A host with a stored policy, or flapping, keeps its `dueAt`
            // (core's heartbeat rule: the monitor arms it).
            let keep = match rec.due_at {
                _ if iamalive_core::heartbeat::monitor_arms_due(&rec) => Keep::Policy,
                Some(d) if in_lazy_window(d, hb.at, due_if_up) => Keep::Window(d),
                _ => Keep::Rearm,
            };
            Ok(Self::Fast { keep })
        } else {
            Ok(Self::Slow(Some(item)))
        }
    }
}
