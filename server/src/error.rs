//! What can stop the server.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::ConfigError;

/// Why [`serve`](crate::serve) could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The file holding the generated key's hash could not be read or written.
    #[error("key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Two channels share a name.
    #[error(transparent)]
    Channels(#[from] iamalive_core::DuplicateChannel),
    /// The HTTP server failed.
    #[error("http server: {0}")]
    Serve(#[source] std::io::Error),
}
