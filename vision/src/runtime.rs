//! One ONNX Runtime environment per process, loaded from the library `cargo xtask fetch` took
//! out of the PyPI wheel (`ort`'s `load-dynamic`: nothing is downloaded at build or run time).

use parking_lot::Mutex;
use std::path::{Path, PathBuf};

use ort::environment::Environment;

use crate::Error;

static RUNTIME: Mutex<Option<(PathBuf, Environment)>> = Mutex::new(None);

/// Loads ONNX Runtime from `library` once per process and returns its environment. Later calls
/// with the same path return the same environment; a different path is an error, since a
/// process can hold only one ONNX Runtime.
pub fn init_runtime(library: &Path) -> Result<Environment, Error> {
    let mut slot = RUNTIME.lock();
    if let Some((loaded, env)) = slot.as_ref() {
        if loaded == library {
            return Ok(env.clone());
        }
        return Err(Error::RuntimeMismatch {
            loaded: loaded.clone(),
            wanted: library.to_path_buf(),
        });
    }
    let fail = |reason: String| Error::Runtime {
        path: library.to_path_buf(),
        reason,
    };
    if !library.exists() {
        return Err(fail("file not found".into()));
    }
    let env = ort::init_from(library)
        .map_err(|e| fail(e.to_string()))?
        .with_name("rollcall")
        .with_telemetry(false)
        .build()
        .map_err(|e| fail(e.to_string()))?;
    *slot = Some((library.to_path_buf(), env.clone()));
    Ok(env)
}

/// A session created once and shared: `ort` runs need `&mut Session`, so runs are serialised
/// per model; each run still uses `intra_threads` cores.
pub(crate) fn open_session(
    env: &Environment,
    path: &Path,
    intra_threads: usize,
) -> Result<Mutex<ort::session::Session>, Error> {
    let fail = |reason: String| Error::Model {
        path: path.to_path_buf(),
        reason,
    };
    if !path.exists() {
        return Err(fail("file not found".into()));
    }
    let session = ort::session::Session::builder(env)
        .map_err(|e| fail(e.to_string()))?
        .with_optimization_level(ort::session::builder::GraphOptimizationLevel::All)
        .map_err(|e| fail(e.to_string()))?
        .with_intra_threads(intra_threads.max(1))
        .map_err(|e| fail(e.to_string()))?
        .commit_from_file(path)
        .map_err(|e| fail(e.to_string()))?;
    Ok(Mutex::new(session))
}
