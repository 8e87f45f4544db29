use std::fmt;

/// Provider errors keep OpenDAL's classification so retry policies and errno mapping
/// above can use it; they are flattened only at the kernel edge.
#[derive(Debug, thiserror::Error)]
pub struct Error {
    kind: ErrorKind,
    temporary: bool,
    context: String,
    #[source]
    source: Option<opendal::Error>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    PermissionDenied,
    IsADirectory,
    NotADirectory,
    Unsupported,
    RateLimited,
    ConditionNotMatch,
    ConfigInvalid,
    /// A name this provider cannot store faithfully.
    InvalidName,
    /// A path longer than this provider stores (`PATH_MAX` of a folder, an S3 key's
    /// 1024 bytes), as stored: encrypted names are longer than plain ones.
    PathTooLong,
    Other,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind, context: impl Into<String>) -> Self {
        Self { kind, temporary: false, context: context.into(), source: None }
    }

    pub fn from_opendal(err: opendal::Error, context: impl Into<String>) -> Self {
        use opendal::ErrorKind as K;
        let kind = match err.kind() {
            K::NotFound => ErrorKind::NotFound,
            K::AlreadyExists => ErrorKind::AlreadyExists,
            K::PermissionDenied => ErrorKind::PermissionDenied,
            K::IsADirectory => ErrorKind::IsADirectory,
            K::NotADirectory => ErrorKind::NotADirectory,
            K::Unsupported => ErrorKind::Unsupported,
            K::RateLimited => ErrorKind::RateLimited,
            K::ConditionNotMatch => ErrorKind::ConditionNotMatch,
            K::ConfigInvalid => ErrorKind::ConfigInvalid,
            _ => ErrorKind::Other,
        };
        Self { kind, temporary: err.is_temporary(), context: context.into(), source: Some(err) }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// True when retrying the same request later may succeed (throttling, timeouts, 5xx).
    pub fn is_temporary(&self) -> bool {
        self.temporary || self.kind == ErrorKind::RateLimited
    }

    /// True when the provider could not be reached or did not answer (a network error,
    /// a timeout, throttling, a server error), as opposed to an answer ("not found",
    /// "denied") or a problem with the data itself (failed authentication).
    pub fn is_unreachable(&self) -> bool {
        self.is_temporary() || self.source.as_ref().is_some_and(|s| s.kind() == opendal::ErrorKind::Unexpected)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(src) => write!(f, "{}: {src}", self.context),
            None => write!(f, "{}: {:?}", self.context, self.kind),
        }
    }
}
