//! Both sides changed a file: the provider's version keeps the name, ours is uploaded
//! beside it as `NAME (conflict HOST YYYY-MM-DD hhmmss).EXT` (UTC), so nothing is lost.
//!
//! Detected by comparing versions, never wall clocks: a pending change remembers the
//! provider version (size, mtime) it started from; if the provider shows another one
//! when the upload is about to run, someone else changed it meanwhile. A file we
//! created that someone else created too (same name) is a conflict as well. A file
//! deleted elsewhere while changed here is simply uploaded again: the edit survives.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use oxidrive_providers::{ErrorKind, ObjectMeta, Precondition};

use crate::error::Result;
use crate::local_copy::LocalCopy;
use crate::store::{Store, parent_of, remote_entry};

impl Store {
    /// Whether uploading pending `path` now would overwrite someone else's change;
    /// `remote` is what the provider shows there now.
    pub(crate) fn is_conflict(
        remote: Option<&ObjectMeta>,
        is_new: bool,
        base: Option<(u64, Option<SystemTime>)>,
    ) -> bool {
        match (remote, is_new, base) {
            (Some(_), true, _) => true,
            (Some(m), false, Some(b)) => (m.size, m.mtime) != b,
            _ => false,
        }
    }

    /// Uploads `copy` (our version of `path`) under a conflict name next to it, and
    /// returns that path. The provider's version stays at `path`.
    pub(crate) async fn upload_conflict_copy(&self, path: &str, copy: &Arc<LocalCopy>) -> Result<String> {
        let mut n = 1;
        let target = loop {
            let target = conflict_path(path, &host(), SystemTime::now(), n);
            n += 1;
            if self.provider.stat(&target).await?.is_some() || self.pending().contains_key(&target) {
                continue;
            }
            // Another device may pick the same name at the same moment.
            match self.provider.upload(&target, &**copy, &Precondition::Absent).await {
                Err(e) if e.kind() == ErrorKind::ConditionNotMatch && n < 100 => continue,
                r => r?,
            }
            break target;
        };
        let meta = self.provider.stat(&target).await?;
        self.index.remote_put(&self.root, &target, meta.as_ref().map(remote_entry))?;
        self.conflicts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(target.clone());
        tracing::warn!(root = %self.root, path, kept_as = %target,
            "conflict: changed here and on the provider; the provider's version keeps the name, ours is kept beside it");
        Ok(target)
    }

    /// Whether `path` is a conflict copy made during this run.
    pub fn is_conflict_copy(&self, path: &str) -> bool {
        self.conflicts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(path)
    }

    pub fn conflict_count(&self) -> usize {
        self.conflicts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().replace('/', "-"))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "this device".into())
}

/// `dir/name (conflict HOST YYYY-MM-DD hhmmss).ext`, with ` N` after the time when
/// `n > 1` (two conflicts of one file in the same second).
fn conflict_path(path: &str, host: &str, at: SystemTime, n: u32) -> String {
    let dir = parent_of(path);
    let name = path.rsplit('/').next().unwrap_or(path);
    // A leading dot is a hidden file's, not an extension.
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    let suffix = if n > 1 { format!(" {n}") } else { String::new() };
    let new = format!("{stem} (conflict {host} {}{suffix}){ext}", utc_stamp(at));
    if dir.is_empty() { new } else { format!("{dir}/{new}") }
}

/// `YYYY-MM-DD hhmmss` in UTC: how names made by oxidrive (conflict copies, Trash
/// duplicates) carry a time.
pub fn utc_stamp(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let t = secs % 86_400;
    format!("{y:04}-{mo:02}-{d:02} {:02}{:02}{:02}", t / 3600, t / 60 % 60, t % 60)
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn conflict_names() {
        let at = UNIX_EPOCH + Duration::from_secs(1_795_392_000 + 3723);
        assert_eq!(conflict_path("a/report.pdf", "box", at, 0), "a/report (conflict box 2026-11-23 010203).pdf");
        assert_eq!(conflict_path("notes", "box", at, 2), "notes (conflict box 2026-11-23 010203 2)");
        assert_eq!(conflict_path(".bashrc", "box", at, 0), ".bashrc (conflict box 2026-11-23 010203)");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn conflict_rules() {
        let t = Some(UNIX_EPOCH + Duration::from_secs(5));
        let meta = |size| ObjectMeta { kind: oxidrive_providers::ObjectKind::File, size, mtime: t, etag: None };
        assert!(!Store::is_conflict(None, false, Some((3, t))), "deleted elsewhere: upload again");
        assert!(!Store::is_conflict(Some(&meta(3)), false, Some((3, t))), "unchanged");
        assert!(Store::is_conflict(Some(&meta(4)), false, Some((3, t))), "changed elsewhere");
        assert!(Store::is_conflict(Some(&meta(3)), true, None), "created on both sides");
        assert!(!Store::is_conflict(None, true, None));
    }
}
