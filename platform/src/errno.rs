use fuser::Errno;
use oxidrive_vfs::{Error, ErrorKind};

/// The one place a neutral error kind becomes an errno.
pub(crate) fn errno(kind: ErrorKind) -> Errno {
    let code = match kind {
        ErrorKind::NotFound => libc::ENOENT,
        ErrorKind::AlreadyExists => libc::EEXIST,
        ErrorKind::NotADirectory => libc::ENOTDIR,
        ErrorKind::IsADirectory => libc::EISDIR,
        ErrorKind::DirectoryNotEmpty => libc::ENOTEMPTY,
        ErrorKind::PermissionDenied => libc::EACCES,
        ErrorKind::NotPermitted => libc::EPERM,
        ErrorKind::ReadOnly => libc::EROFS,
        ErrorKind::CrossesDevices => libc::EXDEV,
        ErrorKind::InvalidInput => libc::EINVAL,
        ErrorKind::NameTooLong => libc::ENAMETOOLONG,
        ErrorKind::IllegalName => libc::EILSEQ,
        ErrorKind::NoSpace => libc::ENOSPC,
        ErrorKind::FileTooLarge => libc::EFBIG,
        ErrorKind::Unsupported => libc::EOPNOTSUPP,
        ErrorKind::NoData => libc::ENODATA,
        ErrorKind::Range => libc::ERANGE,
        ErrorKind::BadHandle => libc::EBADF,
        ErrorKind::Busy => libc::EBUSY,
        ErrorKind::Io => libc::EIO,
    };
    Errno::from_i32(code)
}

/// Logs what the user should hear about and returns the errno.
pub(crate) fn reply_errno(op: &'static str, err: &Error) -> Errno {
    match err.kind() {
        ErrorKind::Io | ErrorKind::NoSpace | ErrorKind::Busy => {
            tracing::warn!(op, error = %err, "request failed");
        }
        _ => tracing::debug!(op, error = %err, "request refused"),
    }
    errno(err.kind())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_kinds_get_their_posix_errno() {
        assert_eq!(errno(ErrorKind::NotFound), Errno::ENOENT);
        assert_eq!(errno(ErrorKind::DirectoryNotEmpty), Errno::from_i32(libc::ENOTEMPTY));
        assert_eq!(errno(ErrorKind::CrossesDevices), Errno::EXDEV);
        assert_eq!(errno(ErrorKind::NoData), Errno::from_i32(libc::ENODATA));
    }
}
