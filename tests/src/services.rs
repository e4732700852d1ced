use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::Duration,
};

use base64::Engine as _;
use reqwest::blocking::Client;
use serde_json::{Value, json};

use crate::scratch::ScratchDatabase;

use crate::process::{HarnessError, Process, bin_path};

const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// A fresh random token (hex), so no two runs share credentials.
fn random_token(prefix: &str) -> Result<String, HarnessError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| HarnessError::Unexpected(format!("randomness: {e}")))?;
    Ok(format!(
        "{prefix}-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

/// Writes a file only its owner may read (a key).
fn write_private(path: &Path, text: &str) -> Result<(), HarnessError> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(io(format!("writing {}", path.display())))
}

fn client() -> Result<Client, HarnessError> {
    Ok(Client::builder().timeout(Duration::from_secs(60)).build()?)
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
    let what = what.into();
    move |source| HarnessError::Io { what, source }
}

/// `GET url+path` with an admin token; the `items` of the answer.
fn admin_items(
    http: &Client,
    url: &str,
    path: &str,
    token: &str,
) -> Result<Vec<Value>, HarnessError> {
    let body: Value = http
        .get(format!("{url}{path}"))
        .bearer_auth(token)
        .send()?
        .error_for_status()?
        .json()?;
    Ok(body["items"].as_array().cloned().unwrap_or_default())
}

/// A response's status and body: its JSON, `null` when empty, else the text as a string.
fn status_and_json(r: reqwest::blocking::Response) -> Result<(u16, Value), HarnessError> {
    let status = r.status().as_u16();
    let text = r.text()?;
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Ok((status, value))
}

/// The `http.admin_token` of a node config file.
fn admin_token_of(config: &Path) -> Result<String, HarnessError> {
    let text =
        std::fs::read_to_string(config).map_err(io(format!("reading {}", config.display())))?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("admin_token = "))
        .map(|t| t.trim_matches('"').to_owned())
        .ok_or_else(|| {
            HarnessError::Unexpected(format!("{}: no http.admin_token", config.display()))
        })
}

/// Waits for the server to write its address, then for `/healthz` to answer 200.
fn wait_ready(proc: &mut Process, addr_file: &Path) -> Result<String, HarnessError> {
    let http = client()?;
    let mut url = None;
    proc.wait_until(READY_TIMEOUT, || {
        let Ok(addr) = std::fs::read_to_string(addr_file) else {
            return false;
        };
        let Ok(addr) = addr.trim().parse::<SocketAddr>() else {
            return false;
        };
        let base = format!("http://{addr}");
        let ok = http
            .get(format!("{base}/healthz"))
            .send()
            .is_ok_and(|r| r.status().is_success());
        if ok {
            url = Some(base);
        }
        ok
    })?;
    url.ok_or_else(|| HarnessError::Unexpected("ready without an address".into()))
}

/// The bytes of a sample photo fetched by `cargo xtask fetch` (artefact name, e.g.
/// `sample-obama`).
pub fn sample_photo(artefact: &str) -> Result<Vec<u8>, HarnessError> {
    let manifest = rollcall_models::Manifest::embedded()
        .map_err(|e| HarnessError::Unexpected(e.to_string()))?;
    let store =
        rollcall_models::Store::from_env().map_err(|e| HarnessError::Unexpected(e.to_string()))?;
    let path = store
        .verified(&manifest, artefact)
        .map_err(|e| HarnessError::Unexpected(e.to_string()))?;
    std::fs::read(&path).map_err(io(format!("reading {}", path.display())))
}

/// The first column of every row `sql` returns, as bytes, read through the administrator role
/// (behind the server's back, past row-level security): to check what is really stored.
pub fn pg_bytes(db: &ScratchDatabase, sql: &str) -> Result<Vec<Vec<u8>>, HarnessError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io("starting a runtime"))?;
    runtime.block_on(async {
        let pg = |e: tokio_postgres::Error| HarnessError::Unexpected(format!("PostgreSQL: {e}"));
        let (client, conn) = tokio_postgres::connect(&db.admin_url_here(), tokio_postgres::NoTls)
            .await
            .map_err(pg)?;
        let driver = tokio::spawn(conn);
        let rows = client.query(sql, &[]).await.map_err(pg)?;
        drop(client);
        let _ = driver.await;
        Ok(rows.iter().map(|r| r.get::<_, Vec<u8>>(0)).collect())
    })
}

/// Where a test cloud keeps its data.
#[derive(Clone)]
pub enum CloudDb {
    /// `dir/cloud.sqlite`.
    Sqlite,
    /// A scratch PostgreSQL database of its own; keep the `Arc` to restart a cloud on the same
    /// data (it is dropped with the last holder).
    Postgres(Arc<ScratchDatabase>),
}

impl CloudDb {
    /// A fresh scratch database on the local PostgreSQL (see [`crate::scratch::admin_url`]).
    pub fn postgres() -> Result<Self, HarnessError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io("starting a runtime"))?;
        let db = runtime
            .block_on(ScratchDatabase::create())
            .map_err(|e| HarnessError::Unexpected(format!("scratch PostgreSQL database: {e}")))?;
        Ok(CloudDb::Postgres(Arc::new(db)))
    }

    /// Both backends, for tests that must pass on each.
    pub fn both() -> Result<[Self; 2], HarnessError> {
        Ok([CloudDb::Sqlite, CloudDb::postgres()?])
    }

    pub fn name(&self) -> &'static str {
        match self {
            CloudDb::Sqlite => "sqlite",
            CloudDb::Postgres(_) => "postgres",
        }
    }
}

/// The password of the owners [`Cloud::tenant_with_owner`] makes.
pub const OWNER_PASSWORD: &str = "correct horse battery staple";

/// Runs `test` twice: on a fresh cloud over SQLite, then on one over a scratch PostgreSQL
/// database, each started with `extra_args` in its own temporary directory; `test` gets the
/// backend's name (for its messages), the cloud and the directory (for nodes beside it).
pub fn on_each_backend(extra_args: &[&str], mut test: impl FnMut(&str, &Cloud, &Path)) {
    for backend in CloudDb::both().expect("a scratch PostgreSQL database (is PostgreSQL running?)")
    {
        let name = backend.name();
        let dir = tempfile::TempDir::new().expect("tempdir");
        let cloud = Cloud::start_with(&dir.path().join("cloud"), None, backend, extra_args)
            .expect("cloud starts");
        test(name, &cloud, dir.path());
    }
}

/// A running `rollcall-cloud`.
pub struct Cloud {
    pub process: Process,
    pub url: String,
    pub admin_token: String,
    /// The SQLite file (also written, unused, for a PostgreSQL cloud).
    pub db: PathBuf,
    pub backend: CloudDb,
    http: Client,
}

impl Cloud {
    /// Starts a cloud in `dir` (database `dir/cloud.sqlite`) on a free port, or on `listen`.
    pub fn start(dir: &Path, listen: Option<SocketAddr>) -> Result<Self, HarnessError> {
        Self::start_on(dir, listen, CloudDb::Sqlite)
    }

    /// Starts a cloud in `dir` on the given database.
    pub fn start_on(
        dir: &Path,
        listen: Option<SocketAddr>,
        backend: CloudDb,
    ) -> Result<Self, HarnessError> {
        Self::start_with(dir, listen, backend, &[])
    }

    /// Starts a cloud in `dir` on the given database, with more `serve` arguments.
    pub fn start_with(
        dir: &Path,
        listen: Option<SocketAddr>,
        backend: CloudDb,
        extra_args: &[&str],
    ) -> Result<Self, HarnessError> {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let db = dir.join("cloud.sqlite");
        let addr_file = dir.join("cloud.addr");
        let _ = std::fs::remove_file(&addr_file);
        let admin_token = random_token("cloud-admin")?;
        let mut cmd = Command::new(bin_path("rollcall-cloud")?);
        cmd.arg("serve").arg("--db");
        match &backend {
            CloudDb::Sqlite => cmd.arg(&db),
            CloudDb::Postgres(pg) => {
                // Replicas share a master key that must exist beforehand (the server will not
                // make one for PostgreSQL): this directory's, kept across restarts.
                let key = dir.join("master.key");
                if !key.exists() {
                    let hex = format!("{}{}", &random_token("k")?[2..], &random_token("k")?[2..]);
                    write_private(&key, &hex)?;
                }
                cmd.arg(&pg.url).arg("--master-key-file").arg(key)
            }
        };
        cmd.arg("--listen")
            .arg(listen.map_or("127.0.0.1:0".to_owned(), |a| a.to_string()))
            .arg("--addr-file")
            .arg(&addr_file)
            .arg("--tenant")
            .arg("acme")
            .args(extra_args)
            .env("ROLLCALL_CLOUD_ADMIN_TOKEN", &admin_token)
            .env("RUST_LOG", "info");
        let mut process = Process::spawn("rollcall-cloud", cmd, &dir.join("cloud.log"))?;
        let url = wait_ready(&mut process, &addr_file)?;
        Ok(Self {
            process,
            url,
            admin_token,
            db,
            backend,
            http: client()?,
        })
    }

    /// Two replicas on one PostgreSQL database (`dir/one`, `dir/two`), sharing one master key.
    pub fn two_replicas(
        dir: &Path,
        backend: CloudDb,
        extra_args: &[&str],
    ) -> Result<(Self, Self), HarnessError> {
        let one = Self::start_with(&dir.join("one"), None, backend.clone(), extra_args)?;
        let two = dir.join("two");
        std::fs::create_dir_all(&two).map_err(io(format!("creating {}", two.display())))?;
        std::fs::copy(dir.join("one").join("master.key"), two.join("master.key"))
            .map_err(io("copying the master key".to_owned()))?;
        let two = Self::start_with(&two, None, backend, extra_args)?;
        Ok((one, two))
    }

    pub fn addr(&self) -> Result<SocketAddr, HarnessError> {
        self.url
            .trim_start_matches("http://")
            .parse()
            .map_err(|e| HarnessError::Unexpected(format!("{}: {e}", self.url)))
    }

    /// Registers a node for `site_id`; returns `(node_id, token)`.
    pub fn register_node(&self, site_id: &str) -> Result<(String, String), HarnessError> {
        let r = self
            .http
            .post(format!("{}/api/v1/nodes", self.url))
            .bearer_auth(&self.admin_token)
            .json(&json!({ "site_id": site_id }))
            .send()?;
        let status = r.status();
        let body: Value = r.json()?;
        match (
            status.as_u16(),
            body["node_id"].as_str(),
            body["token"].as_str(),
        ) {
            (201, Some(id), Some(token)) => Ok((id.to_owned(), token.to_owned())),
            _ => Err(HarnessError::Unexpected(format!(
                "registering a node: {status} {body}"
            ))),
        }
    }

    /// The tenant's events as the admin API lists them.
    pub fn events(&self) -> Result<Vec<Value>, HarnessError> {
        admin_items(&self.http, &self.url, "/api/v1/events", &self.admin_token)
    }

    pub fn get(&self, path: &str) -> Result<reqwest::blocking::Response, HarnessError> {
        Ok(self.http.get(format!("{}{path}", self.url)).send()?)
    }

    /// The Prometheus text of `/metrics` (read with the admin token).
    pub fn metrics(&self) -> Result<String, HarnessError> {
        Ok(self
            .http
            .get(format!("{}/metrics", self.url))
            .bearer_auth(&self.admin_token)
            .send()?
            .error_for_status()?
            .text()?)
    }

    /// GETs `path` as the admin; returns status and JSON body.
    pub fn admin_get(&self, path: &str) -> Result<(u16, Value), HarnessError> {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.admin_token)
            .send()?;
        status_and_json(r)
    }

    /// Any request: `method` to `path` with an optional bearer token, JSON body and `Host`
    /// header; returns status and JSON body.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
        host: Option<&str>,
    ) -> Result<(u16, Value), HarnessError> {
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|e| HarnessError::Unexpected(format!("method {method}: {e}")))?;
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        if let Some(host) = host {
            req = req.header("host", host);
        }
        status_and_json(req.send()?)
    }

    /// Creates tenant `slug` (as the platform operator) with owner `boss@<slug>.example` and
    /// password [`OWNER_PASSWORD`], logs the owner in and returns their access token.
    pub fn tenant_with_owner(&self, slug: &str) -> Result<String, HarnessError> {
        let email = format!("boss@{slug}.example");
        let (status, body) = self.admin_post(
            "/api/v1/platform/tenants",
            &json!({ "slug": slug, "name": slug,
                     "owner": { "email": email, "display_name": "Boss", "password": OWNER_PASSWORD } }),
        )?;
        if status != 201 {
            return Err(HarnessError::Unexpected(format!(
                "creating tenant {slug}: {status} {body}"
            )));
        }
        self.login(slug, &email, OWNER_PASSWORD)
    }

    /// Logs `email` of tenant `tenant` in with `password`; their access token.
    pub fn login(&self, tenant: &str, email: &str, password: &str) -> Result<String, HarnessError> {
        let (status, session) = self.call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(&json!({ "tenant": tenant, "email": email, "password": password })),
            None,
        )?;
        session["access_token"]
            .as_str()
            .filter(|_| status == 200)
            .map(str::to_owned)
            .ok_or_else(|| {
                HarnessError::Unexpected(format!("login of {email}: {status} {session}"))
            })
    }

    /// PATCHes `path` with JSON as the admin; returns status and JSON body.
    pub fn admin_patch(&self, path: &str, body: &Value) -> Result<(u16, Value), HarnessError> {
        let r = self
            .http
            .patch(format!("{}{path}", self.url))
            .bearer_auth(&self.admin_token)
            .json(body)
            .send()?;
        status_and_json(r)
    }

    /// POSTs JSON to `path` as the admin; returns status and JSON body.
    pub fn admin_post(&self, path: &str, body: &Value) -> Result<(u16, Value), HarnessError> {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.admin_token)
            .json(body)
            .send()?;
        status_and_json(r)
    }
}

/// The site a node guards: a circular geofence.
#[derive(Debug, Clone, Copy)]
pub struct Site {
    pub lat: f64,
    pub lon: f64,
    pub radius_m: f64,
}

/// The site of the end-to-end tests and the demo: 150 m around a gate in Paris.
pub const DEMO_SITE: Site = Site {
    lat: 48.8584,
    lon: 2.2945,
    radius_m: 150.0,
};
/// A fix 20 m from the gate with 10 m accuracy: inside the geofence.
pub const AT_GATE: (f64, f64, f64) = (48.85858, 2.2945, 10.0);
/// A fix about 5 km north of the gate.
pub const FAR_AWAY: (f64, f64, f64) = (48.9034, 2.2945, 10.0);

/// What `Node::start` writes into the node's config file.
pub struct NodeOptions {
    pub site_id: String,
    pub site: Site,
    /// Cloud URL and node token; `None` runs the node standalone.
    pub cloud: Option<(String, String)>,
    pub sync_interval_ms: u64,
    /// More lines for the `[cloud]` section (e.g. `ca_file = "…"`).
    pub cloud_extra: String,
    /// Serial port and PD address of the turnstile's OSDP bus, if any.
    pub osdp: Option<(PathBuf, u8)>,
    /// A fixed kiosk's position (lat, lon, accuracy), used when a check-in has no fix.
    pub kiosk: Option<(f64, f64, f64)>,
    /// Require the OSDP secure channel with this SCBK.
    pub osdp_scbk: Option<[u8; 16]>,
    /// Door supervision: (door contact input, held-open limit in seconds).
    pub door: Option<(u8, u64)>,
    /// Turn on `vision.learn_templates` (granted check-ins may add templates).
    pub learn_templates: bool,
    /// More lines for the `[vision]` section (e.g. `passive_liveness = true`).
    pub vision_extra: String,
    /// More lines for the `[osdp]` section (e.g. `card_window_s = 3`).
    pub osdp_extra: String,
    /// More lines for the `[node]` section (e.g. the tenant and its bundle key).
    pub node_extra: String,
    /// More sections at the end of the file (e.g. `[privacy]`).
    pub more_sections: String,
}

impl NodeOptions {
    /// A node of site `hq` at [`DEMO_SITE`] with no cloud and no OSDP bus.
    pub fn standalone() -> Self {
        Self {
            site_id: "hq".into(),
            site: DEMO_SITE,
            cloud: None,
            sync_interval_ms: 1000,
            cloud_extra: String::new(),
            osdp: None,
            kiosk: None,
            osdp_scbk: None,
            door: None,
            learn_templates: false,
            vision_extra: String::new(),
            osdp_extra: String::new(),
            node_extra: String::new(),
            more_sections: String::new(),
        }
    }

    /// The same, syncing to `cloud_url` with `token` every 200 ms.
    pub fn synced(cloud_url: &str, token: String) -> Self {
        Self {
            cloud: Some((cloud_url.to_owned(), token)),
            sync_interval_ms: 200,
            ..Self::standalone()
        }
    }
}

/// The reason codes of a decision or problem document, in order.
pub fn reason_codes(body: &Value) -> Vec<String> {
    body["reasons"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|x| x["code"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The string values at `keys` of `v` (a key starting with `/` is a JSON pointer), for
/// asserting several fields of an answer at once.
pub fn fields<'a>(v: &'a Value, keys: &[&str]) -> Vec<Option<&'a str>> {
    keys.iter()
        .map(|k| match k.strip_prefix('/') {
            Some(_) => v.pointer(k).and_then(Value::as_str),
            None => v[*k].as_str(),
        })
        .collect()
}

/// Polls `f` every 100 ms until it holds; panics with `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running `rollcall-node` with its own SQLite file.
pub struct Node {
    pub process: Process,
    pub url: String,
    pub admin_token: String,
    pub config: PathBuf,
    http: Client,
}

impl Node {
    pub fn write_config(
        dir: &Path,
        opts: &NodeOptions,
        listen: &str,
    ) -> Result<PathBuf, HarnessError> {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let admin_token = random_token("node-admin")?;
        let cloud = match &opts.cloud {
            Some((url, token)) => format!(
                "[cloud]\nurl = \"{url}\"\nnode_token = \"{token}\"\nsync_interval_ms = {}\n{}\n",
                opts.sync_interval_ms, opts.cloud_extra
            ),
            None => String::new(),
        };
        let secure = match opts.osdp_scbk {
            Some(k) => format!(
                "secure_channel = \"required\"\nscbk = \"{}\"\n",
                k.iter().map(|b| format!("{b:02x}")).collect::<String>()
            ),
            None => String::new(),
        };
        let secure = match opts.door {
            Some((input, held)) => {
                format!("{secure}door_contact_input = {input}\nheld_open_s = {held}\n")
            }
            None => secure,
        };
        let osdp = match &opts.osdp {
            Some((port, address)) => format!(
                "[osdp]\nport = \"{}\"\nbaud = 115200\naddress = {address}\nturnstile_output = 0\npulse_ms = 1500\n{secure}{}\n",
                port.display(),
                opts.osdp_extra
            ),
            None => String::new(),
        };
        let kiosk = match opts.kiosk {
            Some((lat, lon, acc)) => {
                format!("[kiosk]\nlat = {lat}\nlon = {lon}\naccuracy_m = {acc}\n")
            }
            None => String::new(),
        };
        let text = format!(
            r#"[node]
site_id = "{site}"
data_dir = "data"
{node_extra}

[http]
listen = "{listen}"
admin_token = "{admin_token}"

{cloud}
{osdp}
{kiosk}
{vision}
[[geofence]]
name = "main-gate"
lat = {lat}
lon = {lon}
radius_m = {radius}
{more}"#,
            vision = {
                let learn = if opts.learn_templates {
                    "learn_templates = true\n"
                } else {
                    ""
                };
                let lines = format!("{learn}{}", opts.vision_extra);
                if lines.is_empty() {
                    lines
                } else {
                    format!("[vision]\n{lines}\n")
                }
            },
            site = opts.site_id,
            node_extra = opts.node_extra,
            more = opts.more_sections,
            lat = opts.site.lat,
            lon = opts.site.lon,
            radius = opts.site.radius_m,
        );
        let path = dir.join("node.toml");
        std::fs::write(&path, text).map_err(io(format!("writing {}", path.display())))?;
        Ok(path)
    }

    /// Starts a node in `dir` (config `dir/node.toml`, database `dir/data/node.sqlite`).
    pub fn start(dir: &Path, opts: &NodeOptions) -> Result<Self, HarnessError> {
        let config = Self::write_config(dir, opts, "127.0.0.1:0")?;
        Self::start_with_config(dir, &config)
    }

    /// After the node was told to reload its config (SIGHUP): waits until it listens again
    /// (the caller removed `dir/node.addr` before) and takes its new address and admin token.
    pub fn await_restart(&mut self, dir: &Path) -> Result<(), HarnessError> {
        self.url = wait_ready(&mut self.process, &dir.join("node.addr"))?;
        self.admin_token = admin_token_of(&self.config)?;
        Ok(())
    }

    /// Starts a node on an existing config file in `dir`.
    pub fn start_with_config(dir: &Path, config: &Path) -> Result<Self, HarnessError> {
        let addr_file = dir.join("node.addr");
        let _ = std::fs::remove_file(&addr_file);
        let mut cmd = Command::new(bin_path("rollcall-node")?);
        cmd.arg("run")
            .arg("--config")
            .arg(config)
            .arg("--addr-file")
            .arg(&addr_file)
            .env("RUST_LOG", "info");
        let admin_token = admin_token_of(config)?;
        let mut process = Process::spawn("rollcall-node", cmd, &dir.join("node.log"))?;
        let url = wait_ready(&mut process, &addr_file)?;
        Ok(Self {
            process,
            url,
            admin_token,
            config: config.to_path_buf(),
            http: client()?,
        })
    }

    /// Creates a person and enrols one photo; returns the enrolment response.
    pub fn enrol(&self, person_id: &str, name: &str, photo: &[u8]) -> Result<Value, HarnessError> {
        let r = self
            .http
            .post(format!("{}/api/v1/people", self.url))
            .bearer_auth(&self.admin_token)
            .json(&json!({ "id": person_id, "display_name": name }))
            .send()?;
        if r.status().as_u16() != 201 {
            return Err(HarnessError::Unexpected(format!(
                "creating {person_id}: {} {}",
                r.status(),
                r.text().unwrap_or_default()
            )));
        }
        let (status, body) = self.post_json(
            &format!("/api/v1/people/{person_id}/faces"),
            &json!({ "image_base64": base64::engine::general_purpose::STANDARD.encode(photo) }),
            true,
        )?;
        if status != 201 {
            return Err(HarnessError::Unexpected(format!(
                "enrolling {person_id}: {status} {body}"
            )));
        }
        Ok(body)
    }

    /// Posts a check-in; returns the HTTP status and the JSON body (decision or problem).
    pub fn check_in(
        &self,
        photo: &[u8],
        position: Option<(f64, f64, f64)>,
    ) -> Result<(u16, Value), HarnessError> {
        let mut body =
            json!({ "image_base64": base64::engine::general_purpose::STANDARD.encode(photo) });
        if let Some((lat, lon, accuracy_m)) = position {
            body["position"] = json!({ "lat": lat, "lon": lon, "accuracy_m": accuracy_m });
        }
        self.post_json("/api/v1/checkins", &body, false)
    }

    /// Checks `photo` in at `position` and returns the node's decision; panics with the
    /// answer unless it is a 200.
    pub fn decide(&self, photo: &[u8], position: Option<(f64, f64, f64)>) -> Value {
        match self.check_in(photo, position) {
            Ok((200, body)) => body,
            Ok((status, body)) => panic!("check-in answered {status}: {body}"),
            Err(e) => panic!("check-in failed: {e}"),
        }
    }

    /// Posts `body` as it is, with `content_type` (none if empty); returns status and body.
    pub fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Value), HarnessError> {
        // A connection of its own: a hostile body may make the node close the connection it came
        // on, and the next request must not be sent down that closing connection.
        let mut req = self
            .http
            .post(format!("{}{path}", self.url))
            .header("connection", "close")
            .body(body);
        if !content_type.is_empty() {
            req = req.header("content-type", content_type);
        }
        status_and_json(req.send()?)
    }

    /// GETs `path` with the admin token; returns status, content type and the raw body.
    pub fn admin_get_bytes(&self, path: &str) -> Result<(u16, String, Vec<u8>), HarnessError> {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.admin_token)
            .send()?;
        let status = r.status().as_u16();
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        Ok((status, content_type, r.bytes()?.to_vec()))
    }

    /// Subscribes to the node's live feed (`GET /api/v1/live`, SSE): each `(event, data)` as
    /// it arrives, read on a thread of its own until the node ends the stream.
    pub fn live(&self) -> Result<std::sync::mpsc::Receiver<(String, Value)>, HarnessError> {
        use std::io::BufRead;
        let response = Client::builder()
            .timeout(None)
            .build()?
            .get(format!("{}/api/v1/live", self.url))
            .bearer_auth(&self.admin_token)
            .send()?;
        if response.status().as_u16() != 200 {
            return Err(HarnessError::Unexpected(format!(
                "live feed: {}",
                response.status()
            )));
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut event = String::new();
            for line in std::io::BufReader::new(response)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = e.to_owned();
                } else if let Some(data) = line.strip_prefix("data: ") {
                    let value = serde_json::from_str(data).unwrap_or(Value::Null);
                    if tx.send((std::mem::take(&mut event), value)).is_err() {
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }

    /// Whether `/metrics` has exactly this line.
    pub fn has_metric(&self, line: &str) -> bool {
        self.get("/metrics")
            .and_then(|r| Ok(r.text()?))
            .is_ok_and(|t| t.lines().any(|l| l == line))
    }

    /// The value of an unlabelled metric on `/metrics`; `None` if the node is unreachable or
    /// has no such line.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let text = self.get("/metrics").and_then(|r| Ok(r.text()?)).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// Posts JSON, with the admin token if `admin`; returns status and JSON body.
    pub fn post_json(
        &self,
        path: &str,
        body: &Value,
        admin: bool,
    ) -> Result<(u16, Value), HarnessError> {
        let mut req = self.http.post(format!("{}{path}", self.url)).json(body);
        if admin {
            req = req.bearer_auth(&self.admin_token);
        }
        status_and_json(req.send()?)
    }

    /// The enrolled people, with their template counts.
    pub fn people(&self) -> Result<Vec<Value>, HarnessError> {
        admin_items(&self.http, &self.url, "/api/v1/people", &self.admin_token)
    }

    /// The `items` of an admin list endpoint.
    pub fn admin_list(&self, path: &str) -> Result<Vec<Value>, HarnessError> {
        admin_items(&self.http, &self.url, path, &self.admin_token)
    }

    /// Sends an admin DELETE; returns the status and the JSON body (`null` when empty).
    pub fn http_delete(&self, path: &str) -> Result<(u16, Value), HarnessError> {
        let r = self
            .http
            .delete(format!("{}{path}", self.url))
            .bearer_auth(&self.admin_token)
            .send()?;
        status_and_json(r)
    }

    /// The node's own events, newest first.
    pub fn events(&self) -> Result<Vec<Value>, HarnessError> {
        admin_items(&self.http, &self.url, "/api/v1/events", &self.admin_token)
    }

    pub fn get(&self, path: &str) -> Result<reqwest::blocking::Response, HarnessError> {
        Ok(self.http.get(format!("{}{path}", self.url)).send()?)
    }
}
