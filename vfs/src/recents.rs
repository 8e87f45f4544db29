//! Names shown in the Recents view: each file under its own name, and when two share a
//! name, the later ones get their provider's name added (`report (Work S3).pdf`).

use std::collections::HashSet;

/// One recent file: which root it is in, its path there, and the root's display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recent {
    pub root: usize,
    pub path: String,
    pub root_name: String,
}

/// Display names for `recents` (newest first), unique within the view.
pub(crate) fn display_names(recents: &[Recent]) -> Vec<String> {
    let mut taken = HashSet::new();
    let mut out = Vec::with_capacity(recents.len());
    for r in recents {
        let base = r.path.rsplit('/').next().unwrap_or(&r.path);
        let mut name = base.to_owned();
        let mut n = 1;
        while taken.contains(&name) {
            let tag = if n == 1 { r.root_name.clone() } else { format!("{} {n}", r.root_name) };
            name = with_tag(base, &tag);
            n += 1;
        }
        taken.insert(name.clone());
        out.push(name);
    }
    out
}

/// `report.pdf` + `Work` → `report (Work).pdf`; names without an extension (or dot
/// files) get the tag at the end.
pub(crate) fn with_tag(name: &str, tag: &str) -> String {
    match name.rfind('.') {
        Some(i) if i > 0 => format!("{} ({tag}){}", &name[..i], &name[i..]),
        _ => format!("{name} ({tag})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(root: usize, path: &str, root_name: &str) -> Recent {
        Recent { root, path: path.into(), root_name: root_name.into() }
    }

    #[test]
    fn duplicates_get_their_provider_name() {
        let names = display_names(&[
            r(0, "a/report.pdf", "Local"),
            r(1, "report.pdf", "Work S3"),
            r(0, "b/report.pdf", "Local"),
            r(0, "notes", "Local"),
            r(1, "x/notes", "Work S3"),
            r(0, ".bashrc", "Local"),
            r(0, "c/.bashrc", "Local"),
        ]);
        assert_eq!(
            names,
            [
                "report.pdf",
                "report (Work S3).pdf",
                "report (Local).pdf",
                "notes",
                "notes (Work S3)",
                ".bashrc",
                ".bashrc (Local)"
            ]
        );
    }

    #[test]
    fn a_tag_that_collides_counts_up() {
        let names = display_names(&[r(0, "a/x.txt", "L"), r(0, "b/x.txt", "L"), r(0, "c/x.txt", "L")]);
        assert_eq!(names, ["x.txt", "x (L).txt", "x (L 2).txt"]);
    }
}
