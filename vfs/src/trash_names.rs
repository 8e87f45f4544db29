//! Names shown in the Trash view: each item under the name it had; when several share
//! it, the newest keeps it and the others get their deletion time added
//! (`notes (deleted 2026-11-23 021500).txt`), then their provider's name.

use std::collections::HashSet;
use std::time::SystemTime;

use crate::recents::with_tag;

/// One trash item: what it was called, when it was deleted, and its provider's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Trashed<'a> {
    pub orig: &'a str,
    pub deleted: SystemTime,
    pub root_name: &'a str,
}

/// Display names for `items` (newest first), unique within the view.
pub(crate) fn display_names(items: &[Trashed<'_>]) -> Vec<String> {
    let mut taken = HashSet::new();
    let mut out = Vec::with_capacity(items.len());
    for t in items {
        let base = t.orig.rsplit('/').next().unwrap_or(t.orig);
        let stamp = format!("deleted {}", oxidrive_cache::utc_stamp(t.deleted));
        let candidates = [base.to_owned(), with_tag(base, &stamp), with_tag(base, &format!("{stamp} {}", t.root_name))];
        let mut name = candidates.iter().find(|c| !taken.contains(*c)).cloned();
        let mut n = 2;
        while name.is_none() {
            let c = with_tag(base, &format!("{stamp} {} {n}", t.root_name));
            if !taken.contains(&c) {
                name = Some(c);
            }
            n += 1;
        }
        let name = name.unwrap_or_default();
        taken.insert(name.clone());
        out.push(name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t<'a>(orig: &'a str, secs: u64, root: &'a str) -> Trashed<'a> {
        Trashed { orig, deleted: SystemTime::UNIX_EPOCH + Duration::from_secs(secs), root_name: root }
    }

    #[test]
    fn newest_keeps_the_name_and_older_ones_say_when() {
        let day = 20_000 * 86_400;
        let names = display_names(&[
            t("a/notes.txt", day + 3600, "Local"),
            t("notes.txt", day + 60, "Local"),
            t("b/notes.txt", day + 60, "Work"),
            t("c/notes.txt", day + 60, "Work"),
            t("dir", day, "Local"),
        ]);
        assert_eq!(
            names,
            [
                "notes.txt",
                "notes (deleted 2024-10-04 000100).txt",
                "notes (deleted 2024-10-04 000100 Work).txt",
                "notes (deleted 2024-10-04 000100 Work 2).txt",
                "dir",
            ]
        );
    }
}
