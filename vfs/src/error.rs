use std::fmt;

/// Platform-neutral error kinds; `platform/` maps each to errno / NTSTATUS exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    NotADirectory,
    IsADirectory,
    DirectoryNotEmpty,
    /// The caller lacks permission (EACCES).
    PermissionDenied,
    /// The operation is never allowed here (EPERM).
    NotPermitted,
    ReadOnly,
    CrossesDevices,
    InvalidInput,
    NameTooLong,
    /// A name the providers cannot hold (not UTF-8).
    IllegalName,
    NoSpace,
    /// Past the largest file size a local copy holds (EFBIG).
    FileTooLarge,
    Unsupported,
    /// No such extended attribute.
    NoData,
    /// A value does not fit the caller's buffer.
    Range,
    BadHandle,
    Busy,
    Io,
}

#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    context: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind, context: impl Into<String>) -> Self {
        Self { kind, context: context.into(), source: None }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Wraps a cache/provider error, keeping its classification.
    pub(crate) fn from_cache(err: oxidrive_cache::Error, context: impl Into<String>) -> Self {
        use oxidrive_cache::Error as C;
        use oxidrive_providers::ErrorKind as P;
        let kind = match &err {
            C::Provider(e) => match e.kind() {
                P::NotFound => ErrorKind::NotFound,
                P::AlreadyExists => ErrorKind::AlreadyExists,
                P::PermissionDenied => ErrorKind::PermissionDenied,
                P::IsADirectory => ErrorKind::IsADirectory,
                P::NotADirectory => ErrorKind::NotADirectory,
                P::Unsupported => ErrorKind::Unsupported,
                P::RateLimited => ErrorKind::Busy,
                P::InvalidName => ErrorKind::InvalidInput,
                P::PathTooLong => ErrorKind::NameTooLong,
                P::ConditionNotMatch | P::ConfigInvalid | P::Other => io_kind_in(e),
            },
            C::Io { source, .. } => io_kind(source),
            C::Index(_) => ErrorKind::Io,
        };
        Self { kind, context: context.into(), source: Some(Box::new(err)) }
    }
}

fn io_kind(e: &std::io::Error) -> ErrorKind {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => ErrorKind::NoSpace,
        Some(libc::EFBIG) => ErrorKind::FileTooLarge,
        Some(libc::ENOENT) => ErrorKind::NotFound,
        // A backing path over PATH_MAX (encrypted names are longer than plain ones).
        Some(libc::ENAMETOOLONG) => ErrorKind::NameTooLong,
        _ => ErrorKind::Io,
    }
}

/// A provider error whose root cause is a local I/O error (the local provider on a
/// full disk) keeps that cause's meaning.
fn io_kind_in(e: &(dyn std::error::Error + 'static)) -> ErrorKind {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return io_kind(io);
        }
        cur = err.source();
    }
    ErrorKind::Io
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.context)?;
        if let Some(src) = &self.source {
            write!(f, ": {src}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}
