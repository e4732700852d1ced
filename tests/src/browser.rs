//! A real browser for page tests: Debian's Chromium driven over WebDriver (chromedriver), with
//! a fake camera that plays a Y4M file made from a photo.

use std::{net::TcpListener, path::Path, process::Command, time::Duration};

use base64::Engine as _;
use reqwest::blocking::Client;
use serde_json::{Value, json};

use crate::process::{HarnessError, Process};

/// Chromium and chromedriver, or why they are missing.
pub fn browser_available() -> Result<(), String> {
    for (tool, package) in [
        ("chromium", "chromium"),
        ("chromedriver", "chromium-driver"),
    ] {
        let ok = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            return Err(format!(
                "{tool} is not installed (Debian {package}; `cargo xtask test` installs it)"
            ));
        }
    }
    Ok(())
}

/// Writes `photo` as a one-frame 640×480 Y4M video (4:2:0, the photo letterboxed on grey) for
/// Chromium's `--use-file-for-fake-video-capture`.
pub fn y4m_from_photo(photo: &[u8], out: &Path) -> Result<(), HarnessError> {
    let img = image::load_from_memory(photo)
        .map_err(|e| HarnessError::Unexpected(format!("decoding the photo: {e}")))?
        .to_rgb8();
    let (w, h) = (640u32, 480u32);
    let scale = (w as f32 / img.width() as f32).min(h as f32 / img.height() as f32);
    let (nw, nh) = (
        (img.width() as f32 * scale) as u32,
        (img.height() as f32 * scale) as u32,
    );
    let small = image::imageops::resize(
        &img,
        nw.max(1),
        nh.max(1),
        image::imageops::FilterType::Triangle,
    );
    let mut canvas = image::RgbImage::from_pixel(w, h, image::Rgb([128, 128, 128]));
    image::imageops::overlay(
        &mut canvas,
        &small,
        ((w - nw) / 2) as i64,
        ((h - nh) / 2) as i64,
    );
    let yuv = |p: &image::Rgb<u8>| {
        let [r, g, b] = p.0.map(f32::from);
        (
            0.299 * r + 0.587 * g + 0.114 * b,
            -0.168_736 * r - 0.331_264 * g + 0.5 * b + 128.0,
            0.5 * r - 0.418_688 * g - 0.081_312 * b + 128.0,
        )
    };
    let mut data = format!("YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\nFRAME\n").into_bytes();
    data.extend(
        canvas
            .pixels()
            .map(|p| yuv(p).0.round().clamp(0.0, 255.0) as u8),
    );
    for plane in [1, 2] {
        for y in (0..h).step_by(2) {
            for x in (0..w).step_by(2) {
                let mut sum = 0.0;
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let c = yuv(canvas.get_pixel(x + dx, y + dy));
                    sum += if plane == 1 { c.1 } else { c.2 };
                }
                data.push((sum / 4.0).round().clamp(0.0, 255.0) as u8);
            }
        }
    }
    std::fs::write(out, data).map_err(|source| HarnessError::Io {
        what: format!("writing {}", out.display()),
        source,
    })
}

/// A headless Chromium session.
pub struct Browser {
    _driver: Process,
    http: Client,
    session: String,
    base: String,
}

impl Browser {
    /// Starts chromedriver and a Chromium whose camera plays `fake_camera` (a Y4M file).
    pub fn start(dir: &Path, fake_camera: &Path) -> Result<Self, HarnessError> {
        browser_available().map_err(HarnessError::Unexpected)?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|source| HarnessError::Io {
                what: "finding a free port".into(),
                source,
            })?
            .port();
        let mut cmd = Command::new("chromedriver");
        cmd.arg(format!("--port={port}"));
        let mut driver = Process::spawn("chromedriver", cmd, &dir.join("chromedriver.log"))?;
        let http = Client::builder().timeout(Duration::from_secs(60)).build()?;
        let base = format!("http://127.0.0.1:{port}");
        driver.wait_until(Duration::from_secs(30), || {
            http.get(format!("{base}/status"))
                .send()
                .is_ok_and(|r| r.status().is_success())
        })?;
        let profile = dir.join("chromium-profile");
        let caps = json!({ "capabilities": { "alwaysMatch": { "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=900,900",
                format!("--user-data-dir={}", profile.display()),
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                format!("--use-file-for-fake-video-capture={}", fake_camera.display()),
            ]
        }}}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()?
            .json()?;
        let session = r["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| HarnessError::Unexpected(format!("no WebDriver session: {r}")))?
            .to_owned();
        Ok(Self {
            _driver: driver,
            http,
            session,
            base,
        })
    }

    fn call(&self, path: &str, body: Value) -> Result<Value, HarnessError> {
        let r: Value = self
            .http
            .post(format!("{}/session/{}/{path}", self.base, self.session))
            .json(&body)
            .send()?
            .json()?;
        if r["value"].get("error").is_some() {
            return Err(HarnessError::Unexpected(format!(
                "WebDriver {path}: {}",
                r["value"]
            )));
        }
        Ok(r["value"].clone())
    }

    pub fn goto(&self, url: &str) -> Result<(), HarnessError> {
        self.call("url", json!({ "url": url })).map(|_| ())
    }

    /// Runs `script` in the page and returns its result.
    pub fn eval(&self, script: &str) -> Result<Value, HarnessError> {
        self.call("execute/sync", json!({ "script": script, "args": [] }))
    }

    /// Saves a PNG screenshot of the page.
    pub fn screenshot(&self, out: &Path) -> Result<(), HarnessError> {
        let r: Value = self
            .http
            .get(format!("{}/session/{}/screenshot", self.base, self.session))
            .send()?
            .json()?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["value"].as_str().unwrap_or_default())
            .map_err(|e| HarnessError::Unexpected(format!("screenshot: {e}")))?;
        std::fs::write(out, png).map_err(|source| HarnessError::Io {
            what: format!("writing {}", out.display()),
            source,
        })
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send();
    }
}
