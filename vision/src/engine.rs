//! The whole pipeline behind one type the node holds for the life of the process.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use image::RgbImage;

use crate::{
    DecodeLimits, Error,
    align::align_face,
    antispoof::{PassiveLiveness, SpoofDetector},
    decode::decode_image,
    detect::{DetectedFace, Detector, DetectorKind},
    embed::{Embedder, EmbedderInput, Embedding, FaceEmbedder},
    iris::IrisModel,
    landmarks::{Mesh, MeshModel},
    quality::{self, Quality, QualityPolicy},
    runtime::init_runtime,
};

/// Where the runtime library and models are (the node gets them from the model store).
#[derive(Debug, Clone)]
pub struct ModelPaths {
    pub runtime: PathBuf,
    pub detector: PathBuf,
    pub embedder: PathBuf,
    /// The face-mesh model; with it, faces get a pose gate and a [`Mesh`] for liveness.
    pub mesh: Option<PathBuf>,
    /// The anti-spoofing model; with it, [`Engine::passive_liveness`] answers.
    pub antispoof: Option<PathBuf>,
    /// The iris-landmark model; with it (and the mesh), a face's [`Mesh::eye_openness`] comes
    /// from the eyelids themselves (two more runs per face, ~5 ms each), so blinks show.
    pub iris: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub detector: DetectorKind,
    /// ONNX Runtime intra-op threads per session.
    pub intra_threads: usize,
    pub quality: QualityPolicy,
    pub decode: DecodeLimits,
    /// The ONNX embedder's pixel normalisation.
    pub embedder_input: EmbedderInput,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            detector: DetectorKind::ShortRange,
            intra_threads: 1,
            quality: QualityPolicy::default(),
            decode: DecodeLimits::default(),
            embedder_input: EmbedderInput::default(),
        }
    }
}

/// A face found in a frame, with its quality and, when it passed the gates, its embedding.
#[derive(Debug, Clone)]
pub struct AnalyzedFace {
    pub face: DetectedFace,
    pub quality: Quality,
    pub embedding: Option<Embedding>,
    /// Landmarks, pose and eye openness, when the mesh model is loaded and the face passed the
    /// other gates.
    pub mesh: Option<Mesh>,
}

/// How long each stage of [`Engine::analyze_timed`] took.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    pub detect: Duration,
    /// Alignment, quality gates and, with the mesh model, the mesh.
    pub align_and_quality: Duration,
    pub embed: Duration,
}

/// Detector + embedder, loaded once.
pub struct Engine {
    detector: Detector,
    embedder: Box<dyn FaceEmbedder>,
    mesh: Option<MeshModel>,
    spoof: Option<SpoofDetector>,
    iris: Option<IrisModel>,
    config: EngineConfig,
    /// At most `config.decode.at_once` decodes at once, whoever calls.
    decodes: crate::decode::DecodeGate,
    /// The length of the embedder's vectors, measured at warm-up.
    embedding_dim: usize,
}

impl Engine {
    pub fn load(paths: &ModelPaths, config: EngineConfig) -> Result<Self, Error> {
        let env = init_runtime(&paths.runtime)?;
        let detector =
            Detector::load(&env, &paths.detector, config.detector, config.intra_threads)?;
        let embedder = Box::new(Embedder::load(
            &env,
            &paths.embedder,
            config.intra_threads,
            config.embedder_input,
        )?);
        let mesh = paths
            .mesh
            .as_ref()
            .map(|p| MeshModel::load(&env, p, config.intra_threads))
            .transpose()?;
        let spoof = paths
            .antispoof
            .as_ref()
            .map(|p| SpoofDetector::load(&env, p, config.intra_threads))
            .transpose()?;
        let iris = paths
            .iris
            .as_ref()
            .map(|p| IrisModel::load(&env, p, config.intra_threads))
            .transpose()?;
        let engine = Self {
            detector,
            embedder,
            mesh,
            spoof,
            iris,
            decodes: crate::decode::DecodeGate::new(config.decode.at_once),
            config,
            embedding_dim: 0,
        };
        engine.warm_up()
    }

    /// Runs each model once so the first check-in does not pay for ONNX Runtime's lazy set-up,
    /// and learns the embedder's vector length from its run.
    fn warm_up(mut self) -> Result<Self, Error> {
        let blank = RgbImage::new(ALIGNED, ALIGNED);
        self.detector.detect(&blank)?;
        let probe = self.embedder.embed(std::slice::from_ref(&blank))?;
        self.embedding_dim = probe.first().map_or(0, |e| e.as_slice().len());
        if let Some(spoof) = &self.spoof {
            let whole = crate::BoxPx {
                x: 0.0,
                y: 0.0,
                w: ALIGNED as f32,
                h: ALIGNED as f32,
            };
            spoof.check(
                &blank,
                &DetectedFace {
                    bbox: whole,
                    score: 0.0,
                    keypoints: [crate::Point { x: 0.0, y: 0.0 }; 6],
                },
            )?;
        }
        Ok(self)
    }

    /// The length of the embedder's vectors: templates of another length cannot be compared
    /// with its faces (a node skips such pulled templates rather than adopt them).
    pub fn embedding_dim(&self) -> usize {
        self.embedding_dim
    }

    /// The same engine with another embedder (another model, runtime or device), warmed up.
    /// Templates made by the old one must not be compared with the new one's embeddings.
    pub fn with_embedder(mut self, embedder: Box<dyn FaceEmbedder>) -> Result<Self, Error> {
        self.embedder = embedder;
        self.warm_up()
    }

    /// Whether the anti-spoofing model is loaded.
    pub fn has_passive_liveness(&self) -> bool {
        self.spoof.is_some()
    }

    /// The passive liveness of one face of `image` (the model costs far more than the rest of
    /// the pipeline, so it runs on the face a decision is about, not on every face found);
    /// `None` without the anti-spoofing model.
    pub fn passive_liveness(
        &self,
        image: &RgbImage,
        face: &DetectedFace,
    ) -> Result<Option<PassiveLiveness>, Error> {
        self.spoof
            .as_ref()
            .map(|s| s.check(image, face))
            .transpose()
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Decodes image bytes from outside under the configured limits, at most
    /// `decode.at_once` at a time (the others wait their turn).
    pub fn decode(&self, bytes: &[u8]) -> Result<RgbImage, Error> {
        self.decodes
            .run(|| decode_image(bytes, &self.config.decode))
    }

    /// Every face in the frame, largest first, each with its quality; faces that pass the gates
    /// are embedded (in batches).
    pub fn analyze(&self, image: &RgbImage) -> Result<Vec<AnalyzedFace>, Error> {
        self.analyze_timed(image).map(|(faces, _)| faces)
    }

    /// [`Engine::analyze`], with the time each stage took.
    pub fn analyze_timed(
        &self,
        image: &RgbImage,
    ) -> Result<(Vec<AnalyzedFace>, StageTimes), Error> {
        let mut times = StageTimes::default();
        let t = Instant::now();
        let mut faces = self.detector.detect(image)?;
        times.detect = t.elapsed();
        let t = Instant::now();
        faces.sort_by(|a, b| (b.bbox.w * b.bbox.h).total_cmp(&(a.bbox.w * a.bbox.h)));
        let mut analyzed = Vec::with_capacity(faces.len());
        let mut crops = Vec::new();
        let mut crop_owner = Vec::new();
        for (i, face) in faces.into_iter().enumerate() {
            let aligned = align_face(image, &face);
            let mut quality = quality::assess(image, &face, aligned.as_ref(), &self.config.quality);
            let mesh = match &self.mesh {
                Some(model) if quality.passed() => {
                    let mut mesh = model.mesh(image, &face)?;
                    if let Some(iris) = &self.iris {
                        mesh.eye_openness = iris.eye_openness(image, &mesh.points)?;
                    }
                    quality::assess_pose(&mut quality, &mesh.pose, &self.config.quality);
                    Some(mesh)
                }
                _ => None,
            };
            if let (true, Some(crop)) = (quality.passed(), aligned) {
                crops.push(crop);
                crop_owner.push(i);
            }
            analyzed.push(AnalyzedFace {
                face,
                quality,
                embedding: None,
                mesh,
            });
        }
        times.align_and_quality = t.elapsed();
        let t = Instant::now();
        if !crops.is_empty() {
            for (owner, embedding) in crop_owner.into_iter().zip(self.embedder.embed(&crops)?) {
                analyzed[owner].embedding = Some(embedding);
            }
        }
        times.embed = t.elapsed();
        Ok((analyzed, times))
    }
}

const ALIGNED: u32 = crate::ALIGNED_SIZE;
