//! Storage providers: an OpenDAL operator per configured store, plus what it can do.
//!
//! Everything above this crate sees provider paths as relative `/`-separated UTF-8
//! strings without a leading slash ("" is the root). Directory paths are passed to
//! OpenDAL with a trailing `/`; callers never add it themselves.

mod backend;
mod encrypted;
mod error;
mod local_io;
mod name_rules;
mod path;
mod provider;
mod services;
mod spec;

pub use backend::{Backend, Capabilities, ObjectKind, ObjectMeta, Precondition};
pub use error::{Error, ErrorKind, Result};
pub use local_io::{LocalSink, LocalSource};
pub use path::{META_DIR, join, parent_and_name};
pub use provider::Provider;
pub use services::operator;
pub use spec::{OAuth, ProviderKind, ProviderSpec, Secret, Tuning};
