//! Reading a labelled photo folder (feature `eval`): one sub-folder of JPEG/PNG photos per
//! person, each photo decoded and analysed; the largest face's embedding becomes a [`Sample`].
//! This is the one place the crate reads files other than models, for the `face-eval` tool and
//! the accuracy test.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::{Engine, PassiveLiveness, StageTimes, eval::Sample};

/// A photo that gave no embedding, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub file: String,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct FolderResult {
    pub photos: usize,
    pub people: usize,
    pub samples: Vec<Sample>,
    pub failures: Vec<Failure>,
    /// Per photo: decode time and the engine's stage times.
    pub timings: Vec<(Duration, StageTimes)>,
    /// With the anti-spoofing model: each embedded photo's `person/file`, passive liveness and
    /// the time the check took. Every photo of such a folder is of a live person, so any
    /// attack verdict here is a bona fide face rejected.
    pub passive: Vec<(String, PassiveLiveness, Duration)>,
}

/// `(person, path)` of every photo under `dir`, sorted.
pub fn list_photos(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for person in std::fs::read_dir(dir)? {
        let person = person?.path();
        if !person.is_dir() {
            continue;
        }
        let name = person
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_owned();
        for f in std::fs::read_dir(&person)? {
            let f = f?.path();
            let ext = f
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            if matches!(ext.as_deref(), Some("jpg" | "jpeg" | "png")) {
                out.push((name.clone(), f));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Embeds every photo of `dir`; `progress` is called with each `person/file` before it is read.
pub fn embed_folder(
    engine: &Engine,
    dir: &Path,
    mut progress: impl FnMut(&str),
) -> std::io::Result<FolderResult> {
    let photos = list_photos(dir)?;
    let mut people: Vec<&String> = photos.iter().map(|(p, _)| p).collect();
    people.dedup();
    let mut result = FolderResult {
        photos: photos.len(),
        people: people.len(),
        ..FolderResult::default()
    };
    for (person, path) in &photos {
        let file = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_owned();
        let label = format!("{person}/{file}");
        progress(&label);
        let fail = |reason: String| Failure {
            file: label.clone(),
            reason,
        };
        let bytes = std::fs::read(path)?;
        let t = Instant::now();
        let image = match engine.decode(&bytes) {
            Ok(i) => i,
            Err(e) => {
                result.failures.push(fail(e.to_string()));
                continue;
            }
        };
        let decode = t.elapsed();
        let (faces, times) = match engine.analyze_timed(&image) {
            Ok(r) => r,
            Err(e) => {
                result.failures.push(fail(e.to_string()));
                continue;
            }
        };
        result.timings.push((decode, times));
        match faces.into_iter().next() {
            None => result.failures.push(fail("no_face".into())),
            Some(f) => match f.embedding {
                Some(embedding) => {
                    let t = Instant::now();
                    match engine.passive_liveness(&image, &f.face) {
                        Ok(Some(p)) => result.passive.push((label.clone(), p, t.elapsed())),
                        Ok(None) => {}
                        Err(e) => result.failures.push(fail(e.to_string())),
                    }
                    result.samples.push(Sample {
                        person: person.clone(),
                        file,
                        embedding,
                    })
                }
                None => result.failures.push(fail(
                    f.quality
                        .issues
                        .iter()
                        .map(|i| i.code())
                        .collect::<Vec<_>>()
                        .join(","),
                )),
            },
        }
    }
    Ok(result)
}
