//! The group records this monitor last read or wrote.
//!
//! A site going dark puts all of its silent hosts in its group's record
//! (about 1 MB at 10,000 hosts), and each sweep batch of those hosts reads
//! the record, decides, and writes it back. Decoding the record again for
//! every batch cost more than the deciding: in a 10,000-host site outage
//! on SQLite it was the largest single cost of the monitor. So a record
//! this monitor wrote or read is kept, and the next read asks the store
//! for the version alone ([`Store::group_version`]); the record is read
//! only when another writer changed it since. Stores that cannot tell the
//! version cheaply are read every time, as before.
//!
//! Versions only grow (every write is a compare-and-swap on the version,
//! group records are never removed), so an equal version is the same
//! record. Kept: one record per group this monitor has touched.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::Monitor;
use crate::{Clock, GroupName, GroupRecord, Store, StoreError};

/// The records kept, and whether the store tells versions.
#[derive(Default)]
pub(super) struct GroupReads {
    records: Mutex<HashMap<GroupName, GroupRecord>>,
    /// Set once the store answered [`Store::group_version`]: until then
    /// nothing is kept (it would never be asked for).
    versioned: AtomicBool,
}

impl GroupReads {
    fn kept(&self, name: &GroupName, version: u64) -> Option<GroupRecord> {
        let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        records.get(name).filter(|g| g.version == version).cloned()
    }

    fn keep(&self, name: &GroupName, record: Option<&GroupRecord>) {
        if !self.versioned.load(Ordering::Relaxed) {
            return;
        }
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        match record {
            Some(g) => {
                records.insert(name.clone(), g.clone());
            }
            None => {
                records.remove(name);
            }
        }
    }
}

impl<S: Store + ?Sized, C: Clock> Monitor<S, C> {
    /// `name`'s group record: the one kept when the store's version is
    /// still its version, else read from the store (and kept).
    pub(super) async fn read_group(
        &self,
        name: &GroupName,
    ) -> Result<Option<GroupRecord>, StoreError> {
        if let Some(version) = self.store.group_version(name).await? {
            self.group_reads.versioned.store(true, Ordering::Relaxed);
            if version == 0 {
                self.group_reads.keep(name, None);
                return Ok(None);
            }
            if let Some(g) = self.group_reads.kept(name, version) {
                return Ok(Some(g));
            }
        }
        let read = self.store.get_group(name).await?;
        self.group_reads.keep(name, read.as_ref());
        Ok(read)
    }

    /// [`Store::swap_group`], keeping `next` when it was written.
    pub(super) async fn write_group(
        &self,
        expected: u64,
        next: &GroupRecord,
    ) -> Result<bool, StoreError> {
        let written = self.store.swap_group(expected, next).await?;
        self.group_reads.keep(&next.group, written.then_some(next));
        Ok(written)
    }
}
