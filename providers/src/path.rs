/// Name of the folder at each provider root where oxidrive keeps its own objects
/// (temporary uploads now; vault header and trash later). Hidden from listings.
pub const META_DIR: &str = ".oxidrive";

/// Joins a relative provider path and one name.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() { name.to_owned() } else { format!("{dir}/{name}") }
}

/// Splits "a/b/c" into ("a/b", "c"); a top-level name has parent "".
pub fn parent_and_name(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some((parent, name)) => (parent, name),
        None => ("", path),
    }
}

/// The form OpenDAL expects for a directory: trailing slash, root as "/".
pub(crate) fn dir_key(path: &str) -> String {
    if path.is_empty() { "/".to_owned() } else { format!("{path}/") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_and_splits() {
        assert_eq!(join("", "a"), "a");
        assert_eq!(join("a/b", "c"), "a/b/c");
        assert_eq!(parent_and_name("a/b/c"), ("a/b", "c"));
        assert_eq!(parent_and_name("c"), ("", "c"));
        assert_eq!(dir_key(""), "/");
        assert_eq!(dir_key("x/y"), "x/y/");
    }
}
