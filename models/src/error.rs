use std::path::PathBuf;

/// Everything that can go wrong reading the manifest, fetching or verifying an artefact.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{file}: invalid manifest: {reason}")]
    Manifest { file: String, reason: String },

    #[error("unknown artefact `{0}` (not in models/manifest.toml)")]
    UnknownArtefact(String),

    #[error("{what} is missing at {}: run `cargo xtask fetch`", path.display())]
    Missing { what: String, path: PathBuf },

    #[error(
        "{} does not match the manifest: sha256 is {actual}, expected {expected}; \
         refusing to use it (delete it and run `cargo xtask fetch` to fetch a good copy)",
        path.display()
    )]
    ChecksumMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },

    #[error(
        "{} was converted from a different source (stamp says {found}, manifest pins {expected}): \
         run `cargo xtask fetch` to convert it again",
        path.display()
    )]
    StaleConversion {
        path: PathBuf,
        expected: String,
        found: String,
    },

    #[error("`{file}` is not inside package archive {}", archive.display())]
    NotInArchive { archive: PathBuf, file: String },

    #[error("`{command}` failed ({status}):\n{output}")]
    Command {
        command: String,
        status: String,
        output: String,
    },

    #[error("no home directory: set ROLLCALL_HOME to choose where models are cached")]
    NoHome,

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{}: {source}", path.display())]
    Zip {
        path: PathBuf,
        #[source]
        source: zip::result::ZipError,
    },
}

pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T, Error>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T, Error> {
        self.map_err(|source| Error::Io {
            path: path.into(),
            source,
        })
    }
}
