//! Assessments per second on one core: a 20-vertex polygon among 5 geofences and 50 history
//! events, every rule active. Run with `cargo bench -p rollcall-fraud` (target: ≥ 200 000/s).

use std::time::Instant;

use rollcall_fraud::{
    CheckInContext, Credential, Device, FaceResult, Fix, Geofence, PastEvent, Policy, Shift, assess,
};

/// A convex 20-gon of `radius_m` around (lat, lon), counter-clockwise, closed.
fn polygon(name: &str, lat: f64, lon: f64, radius_m: f64) -> Geofence {
    let k = 111_195.0;
    let mut ring: Vec<[f64; 2]> = (0..20)
        .map(|i| {
            let a = i as f64 / 20.0 * std::f64::consts::TAU;
            [
                lon + radius_m * a.cos() / (k * lat.to_radians().cos()),
                lat + radius_m * a.sin() / k,
            ]
        })
        .collect();
    ring.push(ring[0]);
    Geofence::polygon(name, &ring, &[]).expect("valid polygon")
}

fn main() {
    let (lat, lon) = (48.8584, 2.2945);
    let mut geofences = vec![polygon("main", lat, lon, 150.0)];
    for i in 1..5 {
        geofences.push(
            Geofence::circle(format!("annex-{i}"), lat + i as f64 * 0.01, lon, 80.0)
                .expect("valid"),
        );
    }
    let now = 1_800_000_000_000i64;
    let history: Vec<PastEvent> = (0..50)
        .map(|i| PastEvent {
            at_ms: now - (i + 1) * 1_800_000,
            person_id: Some("p1".into()),
            device_id: Some(format!("kiosk-{}", i % 3)),
            device_time_ms: Some(now - (i + 1) * 1_800_000),
            lat: Some(lat + (i % 7) as f64 * 1e-4),
            lon: Some(lon),
            accuracy_m: Some(12.0),
            frame_hash: Some(format!("{i:064x}")),
            perceptual_hash: Some(0x0123_4567_89ab_cdef ^ (i as u64) << 7),
            inside: vec!["main".into()],
        })
        .collect();
    let ctx = CheckInContext {
        at_ms: now,
        fix: Some(Fix {
            lat: lat + 0.0003,
            lon,
            accuracy_m: 15.0,
            fix_time_ms: Some(now - 2_000),
            mock: false,
            satellites: Some(9),
            provider: Some("gps".into()),
        }),
        device: Device {
            id: "kiosk-1".into(),
            time_ms: Some(now + 500),
            ..Device::default()
        },
        server_offset_ms: Some(40),
        face: Some(FaceResult {
            person_id: Some("p1".into()),
            similarity: Some(0.81),
            margin: Some(0.4),
            liveness: Some(0.93),
            faces_in_frame: 1,
            frame_hash: Some("ff".repeat(32)),
            perceptual_hash: Some(0xfedc_ba98_7654_3210),
        }),
        credential: Credential::CardAndFace {
            person_id: "p1".into(),
        },
        person_id: Some("p1".into()),
        device_history: history.iter().take(10).cloned().collect(),
        history,
        shift: Some(Shift {
            start_ms: now - 3_600_000,
            end_ms: now + 3_600_000,
        }),
        geofences,
    };
    let policy = Policy::default();
    let mut sink = 0.0;
    for _ in 0..10_000 {
        sink += assess(&ctx, &policy).score;
    }
    let mut best = 0.0f64;
    for _ in 0..5 {
        let n = 200_000;
        let t = Instant::now();
        for _ in 0..n {
            sink += assess(std::hint::black_box(&ctx), &policy).score;
        }
        best = best.max(n as f64 / t.elapsed().as_secs_f64());
    }
    let a = assess(&ctx, &policy);
    println!("assessment: {:?}, score {}", a.verdict, a.explain());
    println!(
        "fraud assess (20-vertex polygon + 4 circles, 50 history events): {best:.0} assessments/s on one core (best of 5 × 200 000; sink {sink:.0})"
    );
}
