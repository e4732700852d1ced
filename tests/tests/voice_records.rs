//! Voice verification records reach the cloud with their audio, on SQLite and PostgreSQL: a
//! client hands the node a verification and the WAV it judged; the node refuses what is not a
//! readable WAV or not a well-formed record; the audio goes up once, named by its sha256, then
//! the record; the admins list the node's records and listen to the audio, byte for byte. The
//! cloud's blob upload refuses a body whose digest is not its name, another media type, audio it
//! cannot read and a body over the limit — with a problem document each, storing nothing.

use std::time::Duration;

use base64::Engine as _;
use rollcall_protocol::wav;
use rollcall_tests::{Cloud, Node, NodeOptions, on_each_backend, wait_for};
use serde_json::{Value, json};
use sha2::Digest as _;

fn sha(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

fn put_blob(cloud: &Cloud, token: &str, name: &str, media: &str, body: Vec<u8>) -> (u16, Value) {
    let r = reqwest::blocking::Client::new()
        .put(format!("{}/api/v1/sync/blobs/{name}", cloud.url))
        .bearer_auth(token)
        .header("Content-Type", media)
        .body(body)
        .send()
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

fn verification(outcome: &str, audio: &[u8]) -> Value {
    json!({
        "person_id": "E-1042",
        "outcome": outcome,
        "score": 0.87,
        "device": "guard-phone-3",
        "phrase": "four two seven nine",
        "audio_base64": base64::engine::general_purpose::STANDARD.encode(audio),
    })
}

#[test]
fn voice_verifications_reach_the_cloud_with_their_audio() {
    on_each_backend(&[], |backend, cloud, dir| {
        let (node_id, token) = cloud.register_node("hq").expect("registered");
        let node = Node::start(
            &dir.join("node"),
            &NodeOptions::synced(&cloud.url, token.clone()),
        )
        .expect("node");

        // What the node refuses, and why.
        let ogg = b"OggS\0\x02\0\0\0\0\0\0\0\0".to_vec();
        for (body, kind) in [
            (verification("verified", &ogg), "invalid-audio"),
            (
                verification("verified", &wav::tone(440.0, 50)),
                "invalid-audio",
            ),
            (
                verification("maybe", &wav::tone(440.0, 900)),
                "invalid-voice-record",
            ),
            (
                json!({ "outcome": "verified", "device": "p", "audio_base64": "%%%" }),
                "invalid-audio",
            ),
        ] {
            let (status, p) = node
                .post_json("/api/v1/voice-verifications", &body, true)
                .expect("request");
            assert_eq!(
                (status, p["type"].as_str()),
                (422, Some(format!("urn:rollcall:problem:{kind}").as_str())),
                "{backend}: {p}"
            );
        }
        let (status, _) = node
            .post_json(
                "/api/v1/voice-verifications",
                &verification("verified", &wav::tone(440.0, 900)),
                false,
            )
            .expect("request");
        assert_eq!(status, 401, "{backend}: the node's admins only");

        // Two verifications of one recording (a retry at the client): one audio sample.
        let audio = wav::tone(523.0, 1_200);
        let mut stored = Vec::new();
        for outcome in ["inconclusive", "verified"] {
            let (status, s) = node
                .post_json(
                    "/api/v1/voice-verifications",
                    &verification(outcome, &audio),
                    true,
                )
                .expect("request");
            assert_eq!(status, 201, "{backend}: {s}");
            assert_eq!(s["duration_ms"], 1_200, "{s}");
            stored.push(s);
        }
        assert_eq!(stored[0]["audio_sha256"], sha(&audio));
        assert_eq!(stored[0]["audio_sha256"], stored[1]["audio_sha256"]);

        let mut listed = Vec::new();
        wait_for("the records in the cloud", Duration::from_secs(30), || {
            let (_, body) = cloud
                .admin_get(&format!("/api/v1/nodes/{node_id}/voice-verifications"))
                .expect("list");
            listed = body["items"].as_array().cloned().unwrap_or_default();
            listed.len() == 2
        });
        let newest = &listed[0];
        assert_eq!(
            (
                newest["seq"].as_u64(),
                newest["outcome"].as_str(),
                newest["person_id"].as_str(),
                newest["device"].as_str(),
                newest["site_id"].as_str(),
                newest["audio_bytes"].as_u64(),
            ),
            (
                Some(2),
                Some("verified"),
                Some("E-1042"),
                Some("guard-phone-3"),
                Some("hq"),
                Some(audio.len() as u64)
            ),
            "{backend}: {newest}"
        );
        let id = newest["id"].as_str().expect("id");
        let r = reqwest::blocking::Client::new()
            .get(format!(
                "{}/api/v1/voice-verifications/{id}/audio",
                cloud.url
            ))
            .bearer_auth(&cloud.admin_token)
            .send()
            .expect("audio");
        assert_eq!(r.status().as_u16(), 200, "{backend}");
        assert_eq!(r.headers()["content-type"].to_str().ok(), Some("audio/wav"));
        assert_eq!(r.bytes().expect("body").to_vec(), audio, "{backend}");
        let (status, _) = cloud
            .admin_get("/api/v1/voice-verifications/01HZZZZZZZZZZZZZZZZZZZZZZZ/audio")
            .expect("request");
        assert_eq!(status, 404, "{backend}");

        // The blob upload, by hand with the node's credential.
        let other = wav::tone(300.0, 700);
        let (status, p) = put_blob(cloud, &token, &sha(&audio), "audio/wav", other.clone());
        assert_eq!(
            (status, p["type"].as_str()),
            (400, Some("urn:rollcall:problem:digest-mismatch")),
            "{backend}: {p}"
        );
        let (status, p) = put_blob(cloud, &token, &sha(&other), "audio/ogg", other.clone());
        assert_eq!(status, 415, "{backend}: {p}");
        let (status, p) = put_blob(cloud, &token, &sha(&ogg), "audio/wav", ogg.clone());
        assert_eq!(
            (status, p["type"].as_str()),
            (422, Some("urn:rollcall:problem:invalid-audio")),
            "{backend}: {p}"
        );
        let huge = vec![0u8; wav::MAX_AUDIO_BYTES + 1];
        let (status, _) = put_blob(cloud, &token, &sha(&huge), "audio/wav", huge);
        assert_eq!(status, 413, "{backend}");
        let (status, _) = put_blob(cloud, &token, "ABC", "audio/wav", other.clone());
        assert_eq!(status, 400, "{backend}");
        assert_eq!(
            put_blob(cloud, &token, &sha(&other), "audio/wav", other.clone()).0,
            201
        );
        assert_eq!(
            put_blob(cloud, &token, &sha(&other), "audio/wav", other).0,
            200,
            "{backend}: held"
        );
        assert_eq!(
            put_blob(cloud, "not-a-token", &sha(&audio), "audio/wav", audio).0,
            401
        );
        drop(node);
    });
}
