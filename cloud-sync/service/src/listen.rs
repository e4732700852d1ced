//! Binding a server's listener and announcing the bound address (for port 0: tests and the demo
//! read it from `--addr-file`).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    AddrFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Binds `addr`; writes the bound address to `addr_file` if given.
pub async fn bind(
    addr: SocketAddr,
    addr_file: Option<&Path>,
) -> Result<(TcpListener, SocketAddr), ListenError> {
    let bind_err = |source| ListenError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_err)?;
    let local = listener.local_addr().map_err(bind_err)?;
    if let Some(path) = addr_file {
        // Written to a temporary name and renamed, so a reader never sees half an address.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, local.to_string())
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|source| ListenError::AddrFile {
                path: path.to_path_buf(),
                source,
            })?;
    }
    Ok((listener, local))
}
