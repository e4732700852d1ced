//! The pipeline on the real converted models and the sample photos that `cargo xtask fetch`
//! stores: known-answer checks of the converted ONNX files (a face where a face is, the same
//! person close, different people far, a partial face refused).

use std::sync::OnceLock;

use rollcall_models::{Manifest, Store};
use rollcall_vision::{Engine, EngineConfig, ModelPaths};

fn store_path(name: &str) -> std::path::PathBuf {
    let manifest = Manifest::embedded().expect("manifest");
    let store = Store::from_env().expect("store");
    store
        .verified(&manifest, name)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let paths = ModelPaths {
            runtime: store_path("onnxruntime"),
            detector: store_path("blazeface-short-range"),
            embedder: store_path("mobilefacenet"),
            mesh: Some(store_path("face-landmark")),
            antispoof: Some(store_path("face-antispoofing")),
            iris: Some(store_path("iris-landmark")),
        };
        Engine::load(&paths, EngineConfig::default()).unwrap_or_else(|e| panic!("{e}"))
    })
}

fn analyze(sample: &str) -> Vec<rollcall_vision::AnalyzedFace> {
    let bytes = std::fs::read(store_path(sample)).expect("read sample");
    let image = engine().decode(&bytes).expect("decode");
    engine().analyze(&image).expect("analyze")
}

fn embedding(sample: &str) -> rollcall_vision::Embedding {
    let faces = analyze(sample);
    assert!(!faces.is_empty(), "{sample}: no face found");
    let face = &faces[0];
    assert!(face.quality.passed(), "{sample}: {:?}", face.quality);
    face.embedding.clone().expect("embedded")
}

#[test]
fn portraits_have_one_good_face_with_sane_keypoints() {
    for sample in [
        "sample-obama",
        "sample-obama2",
        "sample-obama3",
        "sample-biden",
    ] {
        let faces = analyze(sample);
        let face = &faces[0];
        eprintln!(
            "{sample}: {} faces, best {:?} q {:?}",
            faces.len(),
            face.face.bbox,
            face.quality
        );
        assert!(face.face.score > 0.7, "{sample}: score {}", face.face.score);
        let k = face.face.keypoints;
        // the subject's right eye is on the image's left, both eyes above the nose, nose above the mouth
        assert!(k[0].x < k[1].x, "{sample}: eyes {k:?}");
        assert!(
            k[0].y < k[2].y && k[1].y < k[2].y && k[2].y < k[3].y,
            "{sample}: {k:?}"
        );
        let b = face.face.bbox;
        assert!(b.x < k[2].x && k[2].x < b.x + b.w && b.y < k[2].y && k[2].y < b.y + b.h);
    }
}

#[test]
fn same_person_is_close_and_different_people_are_far() {
    let obama = embedding("sample-obama");
    let obama2 = embedding("sample-obama2");
    let obama3 = embedding("sample-obama3");
    let biden = embedding("sample-biden");
    let same = [
        obama.cosine(&obama2).expect("dim"),
        obama.cosine(&obama3).expect("dim"),
    ];
    let diff = [
        obama.cosine(&biden).expect("dim"),
        obama2.cosine(&biden).expect("dim"),
    ];
    eprintln!("same {same:?} different {diff:?}");
    for s in same {
        assert!(s > 0.5, "same person similarity {s}");
    }
    for d in diff {
        assert!(d < 0.4, "different people similarity {d}");
    }
}

#[test]
fn a_partial_face_is_refused_by_the_quality_gates() {
    for sample in ["sample-obama-partial-face", "sample-obama-partial-face2"] {
        let faces = analyze(sample);
        eprintln!(
            "{sample}: {:?}",
            faces
                .iter()
                .map(|f| (&f.face.bbox, &f.quality))
                .collect::<Vec<_>>()
        );
        assert!(
            faces.iter().all(|f| f.embedding.is_none()),
            "{sample}: a partial face must not be embedded"
        );
    }
}

#[test]
fn a_frame_without_a_face_has_no_faces() {
    let blank = image::RgbImage::from_pixel(640, 480, image::Rgb([128, 128, 128]));
    assert!(engine().analyze(&blank).expect("analyze").is_empty());
}

#[test]
fn the_fetched_embedder_has_a_dynamic_batch_and_batching_does_not_change_embeddings() {
    let env = rollcall_vision::init_runtime(&store_path("onnxruntime")).expect("runtime");
    let embedder = rollcall_vision::Embedder::load(
        &env,
        &store_path("mobilefacenet"),
        1,
        rollcall_vision::EmbedderInput::default(),
    )
    .expect("embedder");
    assert_eq!(
        embedder.fixed_batch(),
        None,
        "the dynamic_batch patch was applied"
    );
    let crops: Vec<image::RgbImage> = ["sample-obama", "sample-biden", "sample-obama2"]
        .iter()
        .map(|s| {
            let bytes = std::fs::read(store_path(s)).expect("read");
            let img = engine().decode(&bytes).expect("decode");
            let face = engine().analyze(&img).expect("analyze").remove(0).face;
            rollcall_vision::align_face(&img, &face).expect("aligned")
        })
        .collect();
    let together = embedder.embed(&crops).expect("batch of 3");
    for (crop, batched) in crops.iter().zip(&together) {
        let alone = embedder
            .embed(std::slice::from_ref(crop))
            .expect("batch of 1");
        let sim = alone[0].cosine(batched).expect("dim");
        assert!(sim > 0.9999, "batch changed the embedding: {sim}");
    }
}

fn encode(img: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

#[test]
fn odd_frames_get_a_clear_answer_never_a_panic() {
    let photo = std::fs::read(store_path("sample-obama")).expect("read");
    let colour = image::load_from_memory(&photo).expect("decode");
    let grey = image::DynamicImage::ImageLuma8(colour.to_luma8());
    let grey16 = image::DynamicImage::ImageLuma16(colour.to_luma16());
    let rgb16 = image::DynamicImage::ImageRgb16(colour.to_rgb16());
    let rotated = colour.rotate90();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "1x1 PNG",
            encode(
                &image::DynamicImage::new_rgb8(1, 1),
                image::ImageFormat::Png,
            ),
        ),
        (
            "black 640x480 JPEG",
            encode(
                &image::DynamicImage::new_rgb8(640, 480),
                image::ImageFormat::Jpeg,
            ),
        ),
        (
            "white 3x3000 PNG",
            encode(
                &image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
                    3,
                    3000,
                    image::Rgb([255, 255, 255]),
                )),
                image::ImageFormat::Png,
            ),
        ),
        ("greyscale JPEG", encode(&grey, image::ImageFormat::Jpeg)),
        (
            "16-bit greyscale PNG",
            encode(&grey16, image::ImageFormat::Png),
        ),
        ("16-bit RGB PNG", encode(&rgb16, image::ImageFormat::Png)),
        ("rotated 90°", encode(&rotated, image::ImageFormat::Jpeg)),
        (
            "CMYK JPEG (Adobe)",
            include_bytes!("data/cmyk-blocks.jpg").to_vec(),
        ),
        ("truncated JPEG", photo[..photo.len() / 3].to_vec()),
        ("JPEG header only", photo[..200].to_vec()),
    ];
    for (name, bytes) in cases {
        if name == "truncated JPEG" {
            let e = engine().decode(&bytes).map(|_| ());
            assert!(
                matches!(&e, Err(rollcall_vision::Error::ImageDecode(m)) if m.contains("cut short")),
                "a cut-short frame is refused, not judged: {e:?}"
            );
        }
        match engine().decode(&bytes) {
            Err(e) => eprintln!("{name}: refused: {e}"),
            Ok(img) => {
                let faces = engine()
                    .analyze(&img)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                eprintln!("{name}: {} face(s)", faces.len());
            }
        }
    }
    // Colour is not needed to recognise someone: the greyscale copy matches the original.
    let embed = |bytes: &[u8]| {
        let img = engine().decode(bytes).expect("decode");
        engine()
            .analyze(&img)
            .expect("analyze")
            .remove(0)
            .embedding
            .expect("embedded")
    };
    let sim = embed(&photo)
        .cosine(&embed(&encode(&grey, image::ImageFormat::Png)))
        .expect("dim");
    assert!(sim > 0.8, "greyscale similarity {sim}");
    let sim16 = embed(&photo)
        .cosine(&embed(&encode(&rgb16, image::ImageFormat::Png)))
        .expect("dim");
    assert!(sim16 > 0.95, "16-bit similarity {sim16}");
}

fn mesh_model() -> &'static rollcall_vision::MeshModel {
    static MESH: OnceLock<rollcall_vision::MeshModel> = OnceLock::new();
    MESH.get_or_init(|| {
        let env = rollcall_vision::init_runtime(&store_path("onnxruntime")).expect("runtime");
        rollcall_vision::MeshModel::load(&env, &store_path("face-landmark"), 1).expect("mesh model")
    })
}

#[test]
fn the_mesh_sees_frontal_open_eyed_portraits_and_follows_a_rotation() {
    for sample in ["sample-obama", "sample-obama2", "sample-biden"] {
        let bytes = std::fs::read(store_path(sample)).expect("read");
        let img = engine().decode(&bytes).expect("decode");
        let face = engine().analyze(&img).expect("analyze").remove(0).face;
        let mesh = mesh_model().mesh(&img, &face).expect("mesh");
        eprintln!(
            "{sample}: presence {:.2} pose {:?} eyes {:?}",
            mesh.presence, mesh.pose, mesh.eye_openness
        );
        assert!(mesh.presence > 0.9, "{sample}: presence {}", mesh.presence);
        assert!(
            mesh.pose.yaw.abs() < 25.0
                && mesh.pose.pitch.abs() < 25.0
                && mesh.pose.roll.abs() < 15.0,
            "{sample}: {:?}",
            mesh.pose
        );
        assert!(
            mesh.eye_openness.iter().all(|e| (0.15..0.6).contains(e)),
            "{sample}: eyes {:?}",
            mesh.eye_openness
        );
        // The nose tip (mesh point 1) lies inside the detector's box.
        let nose = mesh.points[1];
        let b = face.bbox;
        assert!(b.x < nose[0] && nose[0] < b.x + b.w && b.y < nose[1] && nose[1] < b.y + b.h);

        // The same face turned a quarter clockwise: the roll follows. (biden.jpg holds several
        // people, and the largest face after turning need not be his.)
        if sample == "sample-biden" {
            continue;
        }
        let turned = image::DynamicImage::ImageRgb8(img.clone())
            .rotate90()
            .to_rgb8();
        let f = engine().analyze(&turned).expect("analyze").remove(0);
        let m = mesh_model().mesh(&turned, &f.face).expect("mesh");
        let expected = mesh.pose.roll + 90.0;
        eprintln!(
            "{sample} rotated: roll {:.0}, expected {expected:.0}",
            m.pose.roll
        );
        assert!(
            (m.pose.roll - expected).abs() < 12.0,
            "{sample} rotated: roll {} vs {expected}",
            m.pose.roll
        );
    }
}

#[test]
fn active_liveness_on_real_frames_a_still_photo_fails_a_head_turn_passes() {
    use rollcall_vision::liveness::{Challenge, ChallengePolicy, FrameObservation, evaluate};
    let bytes = std::fs::read(store_path("sample-obama2")).expect("read");
    let frame = engine().decode(&bytes).expect("decode");
    let mirrored = image::imageops::flip_horizontal(&frame);
    let mesh_of = |img: &image::RgbImage| {
        let face = engine().analyze(img).expect("analyze").remove(0).face;
        mesh_model().mesh(img, &face).expect("mesh")
    };
    let (a, b) = (mesh_of(&frame), mesh_of(&mirrored));
    eprintln!("yaw {:.1} mirrored {:.1}", a.pose.yaw, b.pose.yaw);
    // Known answer: a mirror image turns the head the other way by as much.
    assert!(
        a.pose.yaw.abs() > 8.0,
        "obama2.jpg is turned: {}",
        a.pose.yaw
    );
    assert!(
        (a.pose.yaw + b.pose.yaw).abs() < 5.0,
        "{} vs {}",
        a.pose.yaw,
        b.pose.yaw
    );

    let policy = ChallengePolicy::default();
    let still: Vec<FrameObservation> = (0..6).map(|_| (&a).into()).collect();
    let r = evaluate(&still, Challenge::Any, &policy);
    assert!(!r.passed, "a still photo passed: {r:?}");
    let turn: Vec<FrameObservation> = [&a, &a, &b, &b, &a].into_iter().map(Into::into).collect();
    let r = evaluate(&turn, Challenge::TurnHead, &policy);
    assert!(r.passed && r.turn_deg > 15.0, "{r:?}");
}

/// A real face under-exposed (a backlit kiosk) or washed out by glare is found but refused with
/// the exposure gate's reason; the photo as taken passes.
#[test]
fn dark_and_washed_out_faces_are_refused_with_the_reason() {
    let bytes = std::fs::read(store_path("sample-obama2")).expect("read");
    let frame = engine().decode(&bytes).expect("decode");
    let graded = |f: &dyn Fn(u8) -> u8| {
        let mut g = frame.clone();
        for p in g.pixels_mut() {
            p.0 = p.0.map(f);
        }
        engine().analyze(&g).expect("analyze")
    };
    let codes = |faces: &[rollcall_vision::AnalyzedFace]| -> Vec<&'static str> {
        faces
            .first()
            .map(|f| f.quality.issues.iter().map(|i| i.code()).collect())
            .unwrap_or_else(|| vec!["no face"])
    };
    assert!(codes(&graded(&|v| v)).is_empty());
    let dark = graded(&|v| (v as f32 * 0.15) as u8);
    assert_eq!(
        codes(&dark),
        ["face_too_dark"],
        "{:?}",
        dark.first().map(|f| &f.quality)
    );
    let glare = graded(&|v| (v as f32 * 2.2).min(255.0) as u8);
    assert_eq!(
        codes(&glare),
        ["face_too_bright"],
        "{:?}",
        glare.first().map(|f| &f.quality)
    );
}

/// Another embedder stands in through the `FaceEmbedder` trait: the engine hands it the same
/// aligned crops and returns what it makes (here a 3-d mean colour, nothing like MobileFaceNet).
#[test]
fn another_embedder_stands_in_through_the_trait() {
    struct MeanColour;
    impl rollcall_vision::FaceEmbedder for MeanColour {
        fn embed(
            &self,
            faces: &[image::RgbImage],
        ) -> Result<Vec<rollcall_vision::Embedding>, rollcall_vision::Error> {
            Ok(faces
                .iter()
                .map(|f| {
                    let mut sum = [1.0f32; 3];
                    for p in f.pixels() {
                        for (s, v) in sum.iter_mut().zip(p.0) {
                            *s += v as f32;
                        }
                    }
                    rollcall_vision::Embedding::from_raw(sum.to_vec()).expect("non-zero")
                })
                .collect())
        }
    }
    let paths = ModelPaths {
        runtime: store_path("onnxruntime"),
        detector: store_path("blazeface-short-range"),
        embedder: store_path("mobilefacenet"),
        mesh: None,
        antispoof: None,
        iris: None,
    };
    let engine = Engine::load(&paths, EngineConfig::default())
        .and_then(|e| e.with_embedder(Box::new(MeanColour)))
        .expect("engine");
    let bytes = std::fs::read(store_path("sample-obama")).expect("read");
    let faces = engine
        .analyze(&engine.decode(&bytes).expect("decode"))
        .expect("analyze");
    let embedding = faces[0].embedding.as_ref().expect("embedded");
    assert_eq!(embedding.as_slice().len(), 3, "the stand-in's own vector");
}

/// Mesh points around each eye (lower lid, upper lid) and the corner pair.
const EYES: [([usize; 16], (usize, usize)); 2] = [
    (
        [
            33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173,
        ],
        (33, 133),
    ),
    (
        [
            362, 382, 381, 380, 374, 373, 390, 249, 263, 466, 388, 387, 386, 385, 384, 398,
        ],
        (362, 263),
    ),
];

/// The frame with both eyes painted shut: each eye's box (a little wider than the lids) filled
/// with the skin just below it, and a dark lash line from corner to corner.
fn eyes_painted_shut(frame: &image::RgbImage, mesh: &[[f32; 3]]) -> image::RgbImage {
    let mut out = frame.clone();
    for (contour, (a, b)) in EYES {
        let xs = contour.iter().map(|&i| mesh[i][0]);
        let ys = contour.iter().map(|&i| mesh[i][1]);
        let (x0, x1) = (
            xs.clone().fold(f32::MAX, f32::min),
            xs.fold(f32::MIN, f32::max),
        );
        let (y0, y1) = (
            ys.clone().fold(f32::MAX, f32::min),
            ys.fold(f32::MIN, f32::max),
        );
        let (pad_x, pad_y) = ((x1 - x0) * 0.15, (y1 - y0) * 0.6);
        let (x0, x1, y0, y1) = (x0 - pad_x, x1 + pad_x, y0 - pad_y, y1 + pad_y);
        // The skin: the mean of a band below the box.
        let mut sum = [0f32; 3];
        let mut n = 0f32;
        for y in (y1 as u32 + 2)..(y1 as u32 + 8) {
            for x in x0 as u32..x1 as u32 {
                let p = frame.get_pixel(x, y).0;
                for c in 0..3 {
                    sum[c] += p[c] as f32;
                }
                n += 1.0;
            }
        }
        let skin = image::Rgb(sum.map(|v| (v / n) as u8));
        for y in y0 as u32..=y1 as u32 {
            for x in x0 as u32..=x1 as u32 {
                out.put_pixel(x, y, skin);
            }
        }
        let (pa, pb) = (mesh[a], mesh[b]);
        for step in 0..=100 {
            let t = step as f32 / 100.0;
            let (x, y) = (pa[0] + (pb[0] - pa[0]) * t, pa[1] + (pb[1] - pa[1]) * t);
            for dy in 0..2 {
                out.put_pixel(x as u32, y as u32 + dy, image::Rgb([40, 30, 30]));
            }
        }
    }
    out
}

/// The mesh's own eyelid points hardly move when the eyes are painted shut; the iris model's
/// do, so a blink over a burst passes the Blink challenge and a still frame does not.
#[test]
fn the_iris_model_sees_eyes_close_and_a_blink_passes() {
    use rollcall_vision::liveness::{Challenge, ChallengePolicy, FrameObservation, evaluate};
    let bytes = std::fs::read(store_path("sample-obama")).expect("read");
    let open = engine().decode(&bytes).expect("decode");
    let analyzed = |img: &image::RgbImage| engine().analyze(img).expect("analyze").remove(0);
    let face = analyzed(&open);
    let open_mesh = face.mesh.clone().expect("mesh");
    let shut = eyes_painted_shut(&open, &open_mesh.points);
    let shut_mesh = analyzed(&shut).mesh.expect("mesh");
    let mesh_only = |img: &image::RgbImage| mesh_model().mesh(img, &face.face).expect("mesh");
    eprintln!(
        "iris openness open {:?} shut {:?}; mesh alone open {:?} shut {:?}",
        open_mesh.eye_openness,
        shut_mesh.eye_openness,
        mesh_only(&open).eye_openness,
        mesh_only(&shut).eye_openness
    );
    for eye in 0..2 {
        assert!(
            (0.15..0.6).contains(&open_mesh.eye_openness[eye]),
            "open eye {eye}: {:?}",
            open_mesh.eye_openness
        );
        assert!(
            shut_mesh.eye_openness[eye] < 0.8 * open_mesh.eye_openness[eye],
            "eye {eye}: open {:?} shut {:?}",
            open_mesh.eye_openness,
            shut_mesh.eye_openness
        );
    }
    // Both eyes together (what the challenge looks at) close below its closed fraction.
    let mean = |e: [f32; 2]| (e[0] + e[1]) / 2.0;
    assert!(
        mean(shut_mesh.eye_openness) < 0.6 * mean(open_mesh.eye_openness),
        "open {:?} shut {:?}",
        open_mesh.eye_openness,
        shut_mesh.eye_openness
    );
    // The mesh alone would not have seen it (the reason for the iris model).
    assert!(
        mean(mesh_only(&shut).eye_openness) > 0.8 * mean(mesh_only(&open).eye_openness),
        "the mesh's own eyelids moved after all"
    );
    let policy = ChallengePolicy::default();
    let (o, c) = (
        FrameObservation::from(&open_mesh),
        FrameObservation::from(&shut_mesh),
    );
    let blink = evaluate(&[o, o, c, o, o], Challenge::Blink, &policy);
    assert!(blink.passed, "{blink:?}");
    let still = evaluate(&[o; 6], Challenge::Blink, &policy);
    assert!(!still.passed, "{still:?}");
    let closed_photo = evaluate(&[c; 6], Challenge::Blink, &policy);
    assert!(!closed_photo.passed, "{closed_photo:?}");
}

/// Known answers of the converted iris model, from the TFLite reference interpreter
/// (ai-edge-litert 2.3.0): on a frame of one colour every eye crop is that colour, and the
/// eye openness computed from the reference's contour points is what the engine must give.
#[test]
fn the_converted_iris_model_gives_the_reference_interpreters_answers() {
    let env = rollcall_vision::init_runtime(&store_path("onnxruntime")).expect("runtime");
    let iris =
        rollcall_vision::IrisModel::load(&env, &store_path("iris-landmark"), 1).expect("iris");
    let mut mesh = vec![[60.0f32, 60.0, 0.0]; 468];
    mesh[133] = [90.0, 62.0, 0.0];
    mesh[362] = [110.0, 60.0, 0.0];
    mesh[263] = [140.0, 61.0, 0.0];
    for (rgb, want) in [([128u8, 128, 128], 0.257_878), ([200, 150, 120], 0.279_504)] {
        let frame = image::RgbImage::from_pixel(200, 120, image::Rgb(rgb));
        let got = iris.eye_openness(&frame, &mesh).expect("runs");
        for eye in got {
            assert!((eye - want).abs() < 1e-3, "{rgb:?}: {got:?} vs {want}");
        }
    }
    assert!(
        iris.eye_openness(&image::RgbImage::new(10, 10), &mesh[..100])
            .is_err()
    );
}

/// Known answers of the converted anti-spoofing model, from the TFLite reference interpreter
/// (ai-edge-litert 2.3.0) on the same inputs: a frame of one colour crops to a 256×256 input of
/// that colour whatever the box, so no resampling detail enters the comparison.
#[test]
fn the_converted_anti_spoofing_model_gives_the_reference_interpreters_answers() {
    const KNOWN: [([u8; 3], [f32; 8]); 3] = [
        (
            [128, 128, 128],
            [
                1.03528, 0.99864, 1.00111, 1.01303, 0.99247, 0.98625, 0.99968, 0.61677,
            ],
        ),
        (
            [200, 150, 120],
            [
                1.02733, 1.0034, 1.00053, 1.01127, 0.9924, 0.98628, 1.00027, 0.00487,
            ],
        ),
        (
            [30, 60, 90],
            [
                1.02978, 0.99692, 1.00117, 1.01253, 0.99258, 0.98632, 1.00016, 0.54416,
            ],
        ),
    ];
    let box_ = rollcall_vision::BoxPx {
        x: 20.0,
        y: 30.0,
        w: 80.0,
        h: 90.0,
    };
    let face = rollcall_vision::DetectedFace {
        bbox: box_,
        score: 0.9,
        keypoints: [rollcall_vision::Point { x: 0.0, y: 0.0 }; 6],
    };
    for (rgb, want) in KNOWN {
        let frame = image::RgbImage::from_pixel(160, 160, image::Rgb(rgb));
        let got = engine()
            .passive_liveness(&frame, &face)
            .expect("runs")
            .expect("the model is loaded");
        for (g, w) in got.leaf_scores.iter().zip(want) {
            assert!(
                (g - w).abs() < 2e-4,
                "{rgb:?}: {:?} vs {want:?}",
                got.leaf_scores
            );
        }
        // A flat colour is no live face: routed to leaf 4, scored as an attack.
        assert_eq!(got.leaf, 4, "{rgb:?}");
        assert!(got.is_attack() && got.liveness == 0.0, "{got:?}");
    }
}

#[test]
fn the_sample_portraits_are_live_to_the_anti_spoofing_model() {
    for sample in [
        "sample-obama",
        "sample-obama2",
        "sample-obama3",
        "sample-biden",
    ] {
        let bytes = std::fs::read(store_path(sample)).expect("read sample");
        let image = engine().decode(&bytes).expect("decode");
        let faces = engine().analyze(&image).expect("analyze");
        let p = engine()
            .passive_liveness(&image, &faces[0].face)
            .expect("runs")
            .expect("loaded");
        eprintln!("{sample}: {p:?}");
        // Live portraits: a broken crop or channel order (BGR scores 95 % of the shared faces
        // as attacks) would push them to the attack leaf.
        assert!(!p.is_attack() && p.liveness > 0.9, "{sample}: {p:?}");
    }
}
