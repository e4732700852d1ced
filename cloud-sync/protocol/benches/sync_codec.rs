//! How big a push is on the wire and what it costs to make and to read, for each encoding
//! (JSON, CBOR) and compression (none, gzip, zstd): a batch of 500 events that look like a
//! site's (random ULIDs, varied scores and reasons) and 20 alarms. Prints one line per pair:
//! bytes, the node's encode + compress time and the cloud's inflate + decode time (medians).
//!
//! `cargo bench -p rollcall-protocol --bench sync_codec` (`ROLLCALL_CODEC_ROUNDS`, default 200).

use std::time::{Duration, Instant};

use rollcall_protocol::{
    codec::Encoding,
    gzip,
    wire::{AlarmRecord, AttendanceEvent, Decision, EventReason, Fix, PushBatch},
    zstd,
};

/// A batch like one a busy site's node pushes after a short outage.
fn site_batch() -> PushBatch {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    const CROCKFORD: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let ulid = |ms: i64, next: &mut dyn FnMut() -> u64| {
        let mut id = format!("{:010X}", ms).into_bytes();
        for _ in 0..16 {
            id.push(CROCKFORD[(next() % 32) as usize]);
        }
        String::from_utf8(id).unwrap_or_default()
    };
    let start = 1_764_000_000_000i64;
    let events = (1..=500u64)
        .map(|seq| {
            let ms = start + seq as i64 * 7_000;
            let denied = seq % 9 == 0;
            AttendanceEvent {
                id: ulid(ms, &mut next),
                seq,
                site_id: "warehouse-7".into(),
                person_id: Some(format!("emp-{:05}", 10_000 + seq * 7919 % 400)),
                decision: if denied {
                    Decision::Denied
                } else {
                    Decision::Granted
                },
                // As the node makes them: a cosine similarity computed in f32, a risk score
                // summed from weights, a GPS fix at full precision.
                similarity: Some(f64::from(0.55f32 + (next() % 4000) as f32 / 10_000.0)),
                risk_score: if denied {
                    0.6 + (next() % 400) as f64 / 1000.0 * 0.37
                } else {
                    0.0
                },
                reasons: if denied {
                    vec![EventReason {
                        code: "outside_geofence".into(),
                        text: format!("{} m outside the site's fence", seq * 13 % 900),
                        weight: 0.6,
                    }]
                } else {
                    vec![]
                },
                position: Some(Fix {
                    lat: 48.8584 + (next() % 100_000) as f64 * 1.3e-8,
                    lon: 2.2945 + (next() % 100_000) as f64 * 1.7e-8,
                    accuracy_m: f64::from(3.0f32 + (next() % 4000) as f32 / 100.0),
                }),
                node_time_ms: ms,
                card: (seq % 3 == 0).then(|| format!("12:{}", 3000 + seq % 400)),
                hlc: None,
            }
        })
        .collect();
    let alarms = (1..=20u64)
        .map(|seq| AlarmRecord {
            id: ulid(start + seq as i64 * 150_000, &mut next),
            seq,
            kind: if seq % 2 == 0 {
                "door_held_open"
            } else {
                "door_forced"
            }
            .into(),
            pd: Some(1),
            detail: format!("door {} at the loading bay", seq % 4),
            node_time_ms: start + seq as i64 * 150_000,
        })
        .collect();
    PushBatch {
        protocol: 1,
        events,
        alarms,
        audit: vec![],
        people: vec![],
        voice: vec![],
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let rounds: usize = std::env::var("ROLLCALL_CODEC_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
        .max(1);
    let batch = site_batch();
    println!(
        "sync_codec: a push of {} events and {} alarms, medians of {rounds} rounds",
        batch.events.len(),
        batch.alarms.len()
    );
    println!(
        "{:<6} {:<8} {:>9} {:>14} {:>14}",
        "format", "coding", "bytes", "node encode", "cloud decode"
    );
    type Pack = fn(&[u8]) -> Vec<u8>;
    type Unpack = fn(&[u8]) -> Option<Vec<u8>>;
    let codings: [(&str, Pack, Unpack); 3] = [
        ("none", |b| b.to_vec(), |b| Some(b.to_vec())),
        ("gzip", gzip::compress, |b| {
            gzip::decompress_bounded(b, 4 << 20).ok()
        }),
        ("zstd", zstd::compress, |b| {
            zstd::decompress_bounded(b, 4 << 20).ok()
        }),
    ];
    for (format, encoding) in [("json", Encoding::Json), ("cbor", Encoding::Cbor)] {
        for (coding, pack, unpack) in codings {
            let mut wire = Vec::new();
            let encode = median(
                (0..rounds)
                    .map(|_| {
                        let t = Instant::now();
                        wire = pack(&encoding.encode(&batch));
                        t.elapsed()
                    })
                    .collect(),
            );
            let decode = median(
                (0..rounds)
                    .map(|_| {
                        let t = Instant::now();
                        let back: Option<PushBatch> =
                            unpack(&wire).and_then(|b| encoding.decode(&b).ok());
                        assert!(back.is_some_and(|b| b.len() == batch.len()), "round trip");
                        t.elapsed()
                    })
                    .collect(),
            );
            println!(
                "{format:<6} {coding:<8} {:>9} {:>11.0} µs {:>11.0} µs",
                wire.len(),
                encode.as_secs_f64() * 1e6,
                decode.as_secs_f64() * 1e6
            );
        }
    }
}
