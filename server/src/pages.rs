//! Walking every host record, a page of [`Store::list`] at a time: the
//! count, the filtered listing and the bulk delete all walk the same way.

use iamalive_core::{HostId, HostRecord, Store, StoreError};

/// Host records in [`Store::list`] order from a starting point, one page
/// per [`next`](Self::next); a short page is the last.
pub(crate) struct HostPages<'a> {
    store: &'a dyn Store,
    after: Option<HostId>,
    size: usize,
    done: bool,
}

impl<'a> HostPages<'a> {
    /// The hosts after `after` (all, when `None`), `size` per page.
    pub(crate) fn new(store: &'a dyn Store, after: Option<HostId>, size: usize) -> Self {
        Self {
            store,
            after,
            size,
            done: false,
        }
    }

    /// The next page; `None` once every host was read.
    pub(crate) async fn next(&mut self) -> Result<Option<Vec<HostRecord>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let page = self.store.list(self.after.as_ref(), self.size).await?;
        self.done = page.len() < self.size;
        match page.last() {
            Some(last) => {
                self.after = Some(last.host.clone());
                Ok(Some(page))
            }
            None => {
                self.done = true;
                Ok(None)
            }
        }
    }
}
