use std::ffi::OsStr;

use crate::error::{Error, ErrorKind, Result};

/// Longest name in bytes, as on every common local filesystem.
pub(crate) const NAME_MAX: usize = 255;

/// Checks a name from the kernel and returns it as UTF-8 (what providers can store).
pub(crate) fn check(name: &OsStr) -> Result<&str> {
    let s = name.to_str().ok_or_else(|| Error::new(ErrorKind::IllegalName, format!("{name:?} is not UTF-8")))?;
    if s.len() > NAME_MAX {
        return Err(Error::new(ErrorKind::NameTooLong, format!("name of {} bytes", s.len())));
    }
    if s.is_empty() || s == "." || s == ".." || s.contains('/') || s.contains('\0') {
        return Err(Error::new(ErrorKind::InvalidInput, format!("invalid name {s:?}")));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn rejects_bad_names() {
        assert_eq!(check(OsStr::new("ok.txt")).unwrap(), "ok.txt");
        assert_eq!(check(OsStr::new(&"é".repeat(127))).unwrap().len(), 254);
        assert_eq!(check(OsStr::new(&"a".repeat(256))).unwrap_err().kind(), ErrorKind::NameTooLong);
        assert_eq!(check(OsStr::from_bytes(b"\xff")).unwrap_err().kind(), ErrorKind::IllegalName);
        assert_eq!(check(OsStr::new("..")).unwrap_err().kind(), ErrorKind::InvalidInput);
    }
}
