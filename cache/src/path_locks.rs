//! Per-path exclusion between uploads and namespace changes of one root.
//!
//! An upload of `a/b` must not run while `a` is being renamed or deleted (it would
//! recreate `a/b` at the old place), and a rename must wait for an upload of the file
//! it moves to land first. A lock on a path conflicts with a lock on the same path, and
//! a *tree* lock also with every lock below its path. Only the paths involved wait; the
//! set is held for a moment, never across I/O.

use std::sync::{Mutex, PoisonError};

use tokio::sync::Notify;

use crate::copies::is_below;

#[derive(Debug, Default)]
pub struct PathLocks {
    held: Mutex<Vec<(String, bool)>>,
    released: Notify,
}

#[must_use = "the lock is released when the guard is dropped"]
pub struct PathGuard<'a> {
    locks: &'a PathLocks,
    entries: Vec<(String, bool)>,
}

impl PathLocks {
    /// Waits until no held lock conflicts with any of `paths` (each `(path, tree)`),
    /// then holds them all at once (so two callers never deadlock on a pair).
    pub async fn lock(&self, paths: &[(&str, bool)]) -> PathGuard<'_> {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            {
                let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
                let busy = paths.iter().any(|&(p, tree)| held.iter().any(|(h, htree)| conflicts(p, tree, h, *htree)));
                if !busy {
                    let entries: Vec<(String, bool)> = paths.iter().map(|&(p, t)| (p.to_owned(), t)).collect();
                    held.extend(entries.iter().cloned());
                    return PathGuard { locks: self, entries };
                }
            }
            released.await;
        }
    }
}

impl Drop for PathGuard<'_> {
    fn drop(&mut self) {
        let mut held = self.locks.held.lock().unwrap_or_else(PoisonError::into_inner);
        for entry in &self.entries {
            if let Some(i) = held.iter().position(|h| h == entry) {
                held.swap_remove(i);
            }
        }
        drop(held);
        self.locks.released.notify_waiters();
    }
}

fn conflicts(a: &str, a_tree: bool, b: &str, b_tree: bool) -> bool {
    a == b || (a_tree && is_below(b, a)) || (b_tree && is_below(a, b))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn conflict_rules() {
        assert!(conflicts("a/b", false, "a/b", false));
        assert!(!conflicts("a/b", false, "a/c", false));
        assert!(conflicts("a", true, "a/b", false));
        assert!(conflicts("a/b/c", false, "a", true));
        assert!(!conflicts("ab/c", false, "a", true));
        assert!(!conflicts("a/b", false, "a", false));
        assert!(conflicts("", true, "x", false));
    }

    #[tokio::test]
    async fn a_tree_lock_waits_for_an_upload_below_it() {
        let locks = Arc::new(PathLocks::default());
        let upload = locks.lock(&[("d/f", false)]).await;
        let l2 = locks.clone();
        let rename = tokio::spawn(async move {
            let _g = l2.lock(&[("d", true), ("e", true)]).await;
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!rename.is_finished(), "rename of d ran while d/f was uploading");
        let _other = locks.lock(&[("x/y", false)]).await;
        drop(upload);
        tokio::time::timeout(Duration::from_secs(5), rename).await.unwrap().unwrap();
    }
}
