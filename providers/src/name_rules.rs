//! Names and paths a service refuses, checked before anything is journaled: such a
//! name would otherwise be taken here and fail only at its upload, later.

use crate::error::{Error, ErrorKind, Result};

/// What one service refuses (for the limits: below the store's root, as stored).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct NameRules {
    /// The longest path, in bytes.
    pub max_bytes: Option<usize>,
    /// The longest path, in characters (OneDrive counts those).
    pub max_chars: Option<usize>,
    /// Windows-style names are refused (OneDrive and SharePoint).
    pub windows: bool,
}

/// What OneDrive refuses in a name (Microsoft's "Restrictions and limitations in
/// OneDrive and SharePoint").
const WINDOWS_CHARS: &[char] = &['"', '*', ':', '<', '>', '?', '\\', '|'];
const WINDOWS_NAMES: &[&str] = &[".lock", "CON", "PRN", "AUX", "NUL", "desktop.ini"];

impl NameRules {
    /// The rules of OpenDAL scheme `scheme` with the store at `root`.
    pub(crate) fn of(scheme: &str, root: &str) -> Self {
        match scheme {
            // A folder's absolute path must fit PATH_MAX (with its NUL).
            "fs" | "sftp" => Self { max_bytes: Some(4095usize.saturating_sub(root.len())), ..Self::default() },
            // An S3 key: 1024 bytes.
            "s3" => Self {
                max_bytes: Some(1024usize.saturating_sub(root.trim_start_matches('/').len())),
                ..Self::default()
            },
            // The whole decoded path, from the drive's top: 400 characters.
            "onedrive" => Self {
                max_chars: Some(400usize.saturating_sub(root.trim_matches('/').chars().count() + 1)),
                windows: true,
                ..Self::default()
            },
            _ => Self::default(),
        }
    }

    /// Refuses a plain (not encrypted) path whose names the service does not take.
    pub(crate) fn check_names(&self, path: &str) -> Result<()> {
        if !self.windows {
            return Ok(());
        }
        for name in path.split('/') {
            let refused = if let Some(c) = name.chars().find(|c| WINDOWS_CHARS.contains(c)) {
                Some(format!("the character {c:?}"))
            } else if WINDOWS_NAMES.iter().any(|n| n.eq_ignore_ascii_case(name)) || is_device(name) {
                Some(format!("the name {name:?}"))
            } else if name.starts_with("~$") {
                Some("names starting with \"~$\"".to_owned())
            } else if name.contains("_vti_") {
                Some("names containing \"_vti_\"".to_owned())
            } else {
                None
            };
            if let Some(what) = refused {
                return Err(Error::new(
                    ErrorKind::InvalidName,
                    format!("{path:?}: OneDrive does not take {what}; rename it, or use an encrypted provider"),
                ));
            }
        }
        Ok(())
    }

    /// Refuses a path longer than the service stores: `stored` bytes, `chars`
    /// characters.
    pub(crate) fn check_len(&self, path: &str, stored: usize, chars: usize) -> Result<()> {
        let over = match (self.max_bytes, self.max_chars) {
            (Some(max), _) if stored > max => Some(format!("{stored} bytes; this provider takes at most {max}")),
            (_, Some(max)) if chars > max => Some(format!("{chars} characters; this provider takes at most {max}")),
            _ => None,
        };
        match over {
            Some(over) => Err(Error::new(ErrorKind::PathTooLong, format!("{path:?}: stored, its path is {over}"))),
            None => Ok(()),
        }
    }
}

/// COM0–COM9 and LPT0–LPT9, in any case.
fn is_device(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 4
        && (name[..3].eq_ignore_ascii_case("COM") || name[..3].eq_ignore_ascii_case("LPT"))
        && b[3].is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(r: Result<()>) -> Option<ErrorKind> {
        r.err().map(|e| e.kind())
    }

    #[test]
    fn onedrive_refuses_windows_names_and_nothing_else() {
        let od = NameRules::of("onedrive", "/Cloud");
        for bad in [
            "a:b",
            "dir/x?.txt",
            "q\"",
            "p|q",
            "back\\slash",
            "CON",
            "con",
            "Lpt7",
            "com0",
            "desktop.ini",
            ".LOCK",
            "~$report.docx",
            "my_vti_file",
        ] {
            assert_eq!(kind(od.check_names(bad)), Some(ErrorKind::InvalidName), "{bad}");
        }
        for good in ["console", "COM10", "LPT", "a b", "dir/con.txt", "résumé.pdf", "~report", "x$"] {
            assert_eq!(kind(od.check_names(good)), None, "{good}");
        }
        let msg = od.check_names("notes/a:b").unwrap_err().to_string();
        assert!(msg.contains("':'") && msg.contains("notes/a:b"), "{msg}");
        for other in ["s3", "fs", "webdav", "gdrive", "dropbox"] {
            assert_eq!(kind(NameRules::of(other, "/").check_names("a:b/CON")), None, "{other}");
        }
    }

    #[test]
    fn limits_count_bytes_or_characters_below_the_root() {
        // "/Cloud" and its separator take 6 of OneDrive's 400 characters.
        let od = NameRules::of("onedrive", "/Cloud/");
        let path = "é".repeat(394);
        assert_eq!(kind(od.check_len(&path, path.len(), 394)), None, "394 two-byte characters fit");
        assert_eq!(kind(od.check_len(&path, path.len(), 395)), Some(ErrorKind::PathTooLong));
        let s3 = NameRules::of("s3", "/");
        assert_eq!(kind(s3.check_len("k", 1024, 1024)), None);
        assert_eq!(kind(s3.check_len("k", 1025, 1)), Some(ErrorKind::PathTooLong), "S3 counts bytes");
        let msg = s3.check_len("k", 1025, 1).unwrap_err().to_string();
        assert!(msg.contains("1025 bytes") && msg.contains("at most 1024"), "{msg}");
        assert_eq!(NameRules::of("webdav", "/"), NameRules::default());
    }
}
