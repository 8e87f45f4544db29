//! The Recents record: which files were lately created, written or opened here.
//!
//! Touches wait in memory and reach the index's `recents` table in batches, inside
//! whichever transaction comes next once a batch is due. Written one by one, a touch
//! was two more encrypted pages (the table and its time index) in every file's commit,
//! a quarter of the pages an untar writes. Recents is a convenience view: a crash may
//! lose the touches of its last moments (never a file), and the view drops names that
//! no longer lead to a file anyway.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::{Transaction, params};

use crate::index::to_ns;

/// Rows kept in the table (the view shows fewer): far more than any Recents view shows.
const KEPT: i64 = 1000;
/// A batch is due with this many touches waiting...
const BATCH: usize = 64;
/// ...or once its first touch has waited this long.
const MAX_WAIT: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Waiting {
    /// (root, path) → newest touch.
    touches: HashMap<(String, String), SystemTime>,
    since: Option<Instant>,
}

/// Touches not yet in the table.
#[derive(Default)]
pub(crate) struct RecentTouches {
    waiting: Mutex<Waiting>,
}

impl RecentTouches {
    pub(crate) fn touch(&self, root: &str, path: &str, at: SystemTime) {
        let mut w = self.lock();
        w.since.get_or_insert_with(Instant::now);
        let newest = w.touches.entry((root.to_owned(), path.to_owned())).or_insert(at);
        *newest = (*newest).max(at);
    }

    /// Whether the waiting touches should go into the next transaction.
    pub(crate) fn due(&self) -> bool {
        let w = self.lock();
        w.touches.len() >= BATCH || w.since.is_some_and(|s| s.elapsed() >= MAX_WAIT)
    }

    /// Writes every waiting touch inside `tx` and trims the table to [`KEPT`] rows.
    /// Callers that read, rename or remove recents rows call this first, in the same
    /// transaction, so those see and carry every touch. Should `tx` roll back, its
    /// touches are lost: only the view would miss them.
    pub(crate) fn write_in(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        let touches = {
            let mut w = self.lock();
            w.since = None;
            std::mem::take(&mut w.touches)
        };
        if touches.is_empty() {
            return Ok(());
        }
        let mut insert = tx.prepare_cached("INSERT OR REPLACE INTO recents (root, path, at_ns) VALUES (?1, ?2, ?3)")?;
        for ((root, path), at) in &touches {
            insert.execute(params![root, path, to_ns(*at)])?;
        }
        // Finding the cut walks a thousand index entries: once per batch, not per touch.
        tx.prepare_cached(
            "DELETE FROM recents WHERE at_ns < (SELECT at_ns FROM recents ORDER BY at_ns DESC LIMIT 1 OFFSET ?1)",
        )?
        .execute(params![KEPT])?;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
