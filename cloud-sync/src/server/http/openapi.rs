//! The OpenAPI 3.1 document of the cloud's HTTP API, `GET /api/openapi.json`, and its rendered
//! page, `GET /docs`.
//!
//! The operations come from the handlers' own `#[utoipa::path]` attributes and the schemas from
//! the request and response types (`api::routes`). What every operation shares — the problem
//! documents of the middleware (400, 401, 403, 406, 429, …), `Idempotency-Key` on unsafe
//! methods, deprecations — is added here, in one place, so no handler has to repeat it.

use std::sync::LazyLock;

use axum::{
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use crate::server::attendance::api::DEPRECATIONS;
use rollcall_service::problem::Problem;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "rollcall-cloud API",
        description = r#"The central server of rollcall: tenants, users, sites, nodes, attendance events and their audit trail.

**Tenants.** Every request works on one tenant. It is named by the host (`acme.<base domain>`) or by the credential; when both name one, they must agree.

**Credentials.** `Authorization: Bearer` with a user's access token (from `POST /api/v1/auth/login`, valid 5 minutes, renewed with the refresh token), a node's token (sync), or the operator's bootstrap token.

**Errors** are RFC 9457 problem documents (`application/problem+json`) with a stable `type` URI; they never carry SQL, file paths or stack traces. Another tenant's object is 404, exactly like a missing one.

**Lists.** v1 pages by `limit`/`offset`; v2 wraps results in `data` and pages by opaque `cursor` (`page.next_cursor`). At most 1000 per page.

**Retries.** Send `Idempotency-Key` with a POST, PATCH or DELETE: the same key with the same body gets the stored answer again (for 24 hours, while your role is the same; otherwise 403 `idempotency-role-changed`); with another body it is refused (422). A secret shown once, such as a node's token, is left out of the replay (`Idempotent-Withheld`).

**Rate limits** apply per user and per tenant (logins per tenant and address); answers carry `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`, and 429 carries `Retry-After`."#,
        license(name = "Apache-2.0"),
    ),
    tags(
        (name = "meta", description = "Health, metrics, versions and this document"),
        (name = "auth", description = "Logging in and out, tokens, the caller"),
        (name = "users", description = "A tenant's users and their roles"),
        (name = "sites", description = "Sites and their geofences"),
        (name = "people", description = "The people who check in: profiles, sites, shifts, face templates"),
        (name = "nodes", description = "Site nodes: registration, revocation, signed config bundles"),
        (name = "sync", description = "What nodes call: pushing their outbox (events, alarms, audit lines, voice records and their audio, people enrolled there), pulling their people, site and card revocations"),
        (name = "cards", description = "Cards revoked at every site"),
        (name = "events", description = "Attendance events with their fraud reasons"),
        (name = "alarms", description = "The sites' hardware alarms, as their nodes pushed them"),
        (name = "audit", description = "Who changed what, when and from where"),
        (name = "tenant", description = "The caller's own tenant's settings"),
        (name = "jobs", description = "Background jobs: their attempts, errors and results; retry, cancel, re-drive the discarded"),
        (name = "realtime", description = "Live updates over a WebSocket: a single-use ticket, then topics with resume"),
        (name = "notifications", description = "Each user's inbox, live and by mail: preferences, quiet hours, digests and the tenant's mail templates"),
        (name = "platform", description = "Tenants and job queues, for the platform's operators"),
    ),
    components(schemas(Problem))
)]
struct ApiDoc;

/// The document's fixed parts; `api::routes` adds the operations.
pub(crate) fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

struct Document {
    json: String,
    html: String,
}

/// Built once, on first use: the routes do not change while the server runs.
static DOCUMENT: LazyLock<Document> = LazyLock::new(|| {
    let doc = spec();
    Document {
        json: doc.to_string(),
        html: crate::server::http::docs_page::render(&doc),
    }
});

/// The finished document as JSON.
pub(crate) fn spec() -> Value {
    let (_, doc) = crate::server::http::router::routes().split_for_parts();
    let mut doc = serde_json::to_value(doc).unwrap_or(Value::Null);
    finish(&mut doc);
    crate::server::http::problem::document(&mut doc);
    doc
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
pub(crate) async fn document() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.json.as_str(),
    )
        .into_response()
}

/// The document rendered as one self-contained page (no scripts, nothing loaded from elsewhere:
/// it works at air-gapped sites).
pub(crate) async fn page() -> Response {
    let mut r = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        DOCUMENT.html.as_str(),
    )
        .into_response();
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    r
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Where an answer names an object that another path works on (OpenAPI links: clients and
/// stateful testers follow them from a created or listed object to its own operations).
const LINKS: &[(&str, &str, &str, &str, &str)] = &[
    // (operation giving the id, status, path taking it, its parameter, where the id is)
    (
        "post /api/v1/sites",
        "201",
        "/api/v1/sites/{id}",
        "id",
        "$response.body#/id",
    ),
    (
        "post /api/v1/users",
        "201",
        "/api/v1/users/{id}",
        "id",
        "$response.body#/id",
    ),
    (
        "post /api/v1/nodes",
        "201",
        "/api/v1/nodes/{id}",
        "id",
        "$response.body#/node_id",
    ),
    (
        "post /api/v1/platform/tenants",
        "201",
        "/api/v1/platform/tenants/{slug}",
        "slug",
        "$response.body#/slug",
    ),
    (
        "get /api/v2/events",
        "200",
        "/api/v2/events/{id}",
        "id",
        "$response.body#/data/0/id",
    ),
    (
        "get /api/v1/events",
        "200",
        "/api/v1/events/{id}",
        "id",
        "$response.body#/items/0/id",
    ),
];

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": {
            "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } }
        }
    })
}

/// Adds what every operation shares.
fn finish(doc: &mut Value) {
    if let Some(components) = doc.get_mut("components").and_then(Value::as_object_mut) {
        components.insert(
            "securitySchemes".into(),
            json!({
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A user's access token (a JWT from /api/v1/auth/login), or the operator's bootstrap token",
                },
                "node_token": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A node's token, shown once when the node is registered",
                },
                "session_cookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": crate::server::auth::sessions::SESSION_COOKIE,
                    "description": "A browser session (POST /api/v1/auth/session), used when no Authorization header is sent; POST, PUT, PATCH and DELETE must then carry X-CSRF-Token",
                },
            }),
        );
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    // Handler names repeat between modules (`users::api::get`, `sites::api::get`): the tag makes
    // each operation id unique, as OpenAPI requires.
    for item in paths.values_mut() {
        for method in METHODS {
            if let Some(op) = item.get_mut(method).and_then(Value::as_object_mut) {
                let id = format!(
                    "{}.{}",
                    text(op.get("tags").and_then(|t| t.get(0))),
                    text(op.get("operationId"))
                );
                op.insert("operationId".into(), Value::String(id));
            }
        }
    }
    link(paths);
    for (path, item) in paths.iter_mut() {
        for method in METHODS {
            if let Some(op) = item.get_mut(method).and_then(Value::as_object_mut) {
                finish_operation(path, method, op);
            }
        }
    }
}

fn push_param(op: &mut Map<String, Value>, param: Value) {
    let params = op
        .entry("parameters")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Some(params) = params.as_array_mut() {
        params.push(param);
    }
}

fn text(v: Option<&Value>) -> &str {
    v.and_then(Value::as_str).unwrap_or_default()
}

fn link(paths: &mut Map<String, Value>) {
    for &(from, status, to, param, value) in LINKS {
        let Some((method, path)) = from.split_once(' ') else {
            continue;
        };
        let targets: Vec<(String, String)> = paths
            .get(to)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(m, op)| Some((m.clone(), op.get("operationId")?.as_str()?.to_owned())))
            .collect();
        let Some(response) = paths
            .get_mut(path)
            .and_then(|item| item.get_mut(method))
            .and_then(|op| op.get_mut("responses"))
            .and_then(|r| r.get_mut(status))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let links = response
            .entry("links")
            .or_insert_with(|| Value::Object(Map::new()));
        for (target_method, operation_id) in targets {
            links[format!("{target_method}_{operation_id}")] = json!({
                "operationId": operation_id,
                "parameters": { param: value },
            });
        }
    }
}

fn finish_operation(path: &str, method: &str, op: &mut Map<String, Value>) {
    let unsafe_method = method != "get";
    let api = path.starts_with("/api/v1/") || path.starts_with("/api/v2/");
    let mut shared: Vec<(&str, &str)> = vec![
        (
            "400",
            "The request is malformed: a field, parameter or body is named and explained",
        ),
        ("406", "The Accept header rules out JSON"),
        ("500", "The server failed; nothing was applied"),
    ];
    if api {
        shared.push((
            "401",
            "No credential, or an invalid, expired or revoked one",
        ));
        shared.push((
            "403",
            "The credential may not do this, or the tenant is suspended",
        ));
        shared.push(("429", "Too many requests: see Retry-After"));
    }
    if path.contains('{') {
        shared.push(("404", "No such object in the caller's tenant"));
    }
    if op.contains_key("requestBody") {
        shared.push(("413", "The body is too large"));
        shared.push(("415", "The body is not application/json"));
    }
    if unsafe_method && api {
        shared.push((
            "409",
            "A conflict: the object exists, or a request with this Idempotency-Key is still running",
        ));
        shared.push((
            "422",
            "This Idempotency-Key was used with another request body",
        ));
    }
    if let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) {
        // A success the handler did not describe is described by its status.
        for (status, response) in responses.iter_mut() {
            let described = response
                .get("description")
                .and_then(Value::as_str)
                .is_some_and(|d| !d.is_empty());
            if !described && let Some(r) = response.as_object_mut() {
                let text = axum::http::StatusCode::from_bytes(status.as_bytes())
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("Success");
                r.insert("description".into(), Value::String(text.into()));
            }
        }
        for (status, description) in shared {
            responses
                .entry(status)
                .or_insert_with(|| problem(description));
        }
    }
    // Whatever a user's token may do, their browser session may do too.
    let for_users = op
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
    if for_users && let Some(security) = op.get_mut("security").and_then(Value::as_array_mut) {
        security.push(json!({ "session_cookie": [] }));
    }
    if unsafe_method && (for_users || path == "/api/v1/auth/session") {
        push_param(
            op,
            json!({
                "name": "X-CSRF-Token",
                "in": "header",
                "required": false,
                "description": "Required with the session cookie: the session's csrf_token",
                "schema": { "type": "string" },
            }),
        );
    }
    let idempotent = axum::http::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .is_ok_and(|m| crate::server::http::idempotency::covers(&m, path));
    if idempotent {
        push_param(
            op,
            json!({
                "name": "Idempotency-Key",
                "in": "header",
                "required": false,
                "description": "Makes a retry safe: the same key with the same body gets the stored answer (24 hours)",
                "schema": { "type": "string", "pattern": "^[!-~]{1,255}$" },
            }),
        );
    }
    let endpoint = format!("{} {path}", method.to_ascii_uppercase());
    if let Some(d) = DEPRECATIONS.iter().find(|d| d.endpoint == endpoint) {
        op.insert("deprecated".into(), Value::Bool(true));
        let note = format!("Deprecated: use {} ({}).", d.successor, d.reason);
        let description = match op.get("description").and_then(Value::as_str) {
            Some(text) => format!("{text}\n\n{note}"),
            None => note,
        };
        op.insert("description".into(), Value::String(description));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in METHODS {
                if let Some(op) = item.get(method) {
                    out.push((path.clone(), method.to_owned(), op.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn the_document_is_openapi_3_1_with_every_route() {
        let doc = spec();
        assert_eq!(doc["openapi"], "3.1.0");
        let ops = operations(&doc);
        let names: Vec<String> = ops
            .iter()
            .map(|(p, m, _)| format!("{} {p}", m.to_ascii_uppercase()))
            .collect();
        for wanted in [
            "GET /healthz",
            "GET /api/openapi.json",
            "POST /api/v1/auth/login",
            "GET /api/v2/events",
            "DELETE /api/v1/sites/{id}",
            "PATCH /api/v1/platform/tenants/{slug}",
            "POST /api/v1/sync/push",
        ] {
            assert!(names.iter().any(|n| n == wanted), "{wanted} in {names:?}");
        }
        // Every operation has a summary, a tag and a success answer.
        for (path, method, op) in &ops {
            assert!(op["summary"].is_string(), "{method} {path} has no summary");
            assert!(op["tags"][0].is_string(), "{method} {path} has no tag");
            let responses = op["responses"].as_object().expect("responses");
            assert!(
                // 101: the WebSocket's switch of protocols is its success.
                responses.keys().any(|s| s.starts_with('2') || s == "101"),
                "{method} {path} has no success answer"
            );
        }
    }

    #[test]
    fn shared_answers_and_headers_are_added_once() {
        let doc = spec();
        for (path, method, op) in operations(&doc) {
            let responses = &op["responses"];
            assert_eq!(
                responses["406"]["content"]["application/problem+json"]["schema"]["$ref"],
                "#/components/schemas/Problem",
                "{method} {path}"
            );
            let idempotency = op["parameters"]
                .as_array()
                .map(|ps| ps.iter().filter(|p| p["name"] == "Idempotency-Key").count())
                .unwrap_or(0);
            let wanted = usize::from(
                method != "get"
                    && path.starts_with("/api/v")
                    && !path.contains("/sync/")
                    && !path.contains("/auth/"),
            );
            assert_eq!(idempotency, wanted, "{method} {path}");
        }
        assert_eq!(doc["paths"]["/api/v1/events"]["get"]["deprecated"], true);
        assert!(doc["paths"]["/api/v2/events"]["get"]["deprecated"].is_null());
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        // A user's browser session works wherever their token does; writes then need CSRF.
        let sites = &doc["paths"]["/api/v1/sites"];
        assert_eq!(sites["get"]["security"][1]["session_cookie"], json!([]));
        let csrf = |op: &Value| {
            op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == "X-CSRF-Token"))
        };
        assert!(csrf(&sites["post"]) && !csrf(&sites["get"]));
        assert!(
            !csrf(&doc["paths"]["/api/v1/sync/push"]["post"]),
            "nodes have no cookies"
        );
        assert!(csrf(&doc["paths"]["/api/v1/auth/session"]["delete"]));
        // Request types refuse unknown fields, and the document says so.
        assert_eq!(
            doc["components"]["schemas"]["NewUserRequest"]["additionalProperties"],
            false
        );
    }

    /// The patterns the document states, by schema and field.
    fn pattern(doc: &Value, schema: &str, field: &str) -> String {
        let p = &doc["components"]["schemas"][schema]["properties"][field]["pattern"];
        p.as_str()
            .unwrap_or_else(|| panic!("{schema}.{field} has no pattern"))
            .to_owned()
    }

    #[test]
    fn each_operation_lists_the_domain_problems_it_can_refuse_with() {
        let doc = spec();
        let mut covered = std::collections::HashSet::new();
        for r in crate::server::http::problem::OPERATION_REFUSALS
            .iter()
            .flat_map(|d| d.iter())
        {
            let (method, path) = r.operation.split_once(' ').expect("method and path");
            let op = &doc["paths"][path][method];
            assert!(op.is_object(), "{} is not an operation", r.operation);
            let listed: Vec<&str> = op["x-problem-types"]
                .as_array()
                .expect("x-problem-types")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            for k in r.types {
                assert!(
                    listed.contains(&k.uri().as_str()),
                    "{}: {}",
                    r.operation,
                    k.slug
                );
                let answer = &op["responses"][k.status.to_string()];
                let said = answer["description"].as_str().unwrap_or_default();
                assert!(
                    said.contains(&format!("`{}`", k.slug)),
                    "{}: {said}",
                    r.operation
                );
                assert!(
                    answer["content"]["application/problem+json"].is_object(),
                    "{} {}",
                    r.operation,
                    k.status
                );
                covered.insert(k.slug);
            }
        }
        for k in crate::server::http::problem::DOMAIN_PROBLEMS
            .iter()
            .flat_map(|d| d.iter())
        {
            assert!(
                covered.contains(k.slug),
                "no operation refuses with {}",
                k.slug
            );
        }
        assert_eq!(
            doc["paths"]["/api/v1/shifts"]["post"]["x-problem-types"][3],
            "urn:rollcall:problem:shift-overlap"
        );
    }

    #[test]
    fn every_domain_problem_type_is_documented_once() {
        let doc = spec();
        let listed: Vec<&str> = doc["x-problem-types"]
            .as_array()
            .expect("x-problem-types")
            .iter()
            .filter_map(|k| k["type"].as_str())
            .collect();
        let kinds: Vec<_> = crate::server::http::problem::DOMAIN_PROBLEMS
            .iter()
            .flat_map(|d| d.iter())
            .collect();
        assert!(kinds.len() >= 14, "{kinds:?}");
        let description = doc["info"]["description"].as_str().expect("description");
        for k in &kinds {
            let uri = k.uri();
            assert_eq!(
                listed.iter().filter(|t| **t == uri).count(),
                1,
                "{uri} listed once"
            );
            assert!(
                description.contains(&format!("| `{uri}` | {} |", k.status)),
                "{uri}"
            );
            assert!(matches!(k.status, 400 | 409 | 422), "{uri}: {}", k.status);
        }
    }

    #[test]
    fn documented_patterns_are_the_validators_own() {
        use crate::server::tenants::resolve::{NAME_PATTERN, SLUG_PATTERN};
        let doc = spec();
        assert_eq!(pattern(&doc, "NewTenant", "slug"), SLUG_PATTERN);
        for (schema, field) in [
            ("NewTenant", "name"),
            ("TenantPatch", "name"),
            ("NewOwner", "display_name"),
            ("NewUserRequest", "display_name"),
            ("UserPatch", "display_name"),
            ("NewSite", "name"),
            ("SitePatch", "name"),
            ("NewPersonRequest", "display_name"),
            ("PersonPatchRequest", "display_name"),
        ] {
            assert_eq!(
                pattern(&doc, schema, field),
                NAME_PATTERN,
                "{schema}.{field}"
            );
        }
        assert_eq!(pattern(&doc, "NewPersonRequest", "id"), PersonId::PATTERN);
        assert_eq!(
            pattern(&doc, "NewTemplateRequest", "model"),
            ModelName::PATTERN
        );
        for (schema, field) in [
            ("NewSite", "id"),
            ("RegisterNode", "site_id"),
            ("BundleRequest", "site_id"),
        ] {
            assert_eq!(
                pattern(&doc, schema, field),
                SiteId::PATTERN,
                "{schema}.{field}"
            );
        }
    }

    use rollcall_protocol::ids::{ModelName, PersonId, SiteId};

    proptest::proptest! {
        /// A value the document admits is one the server accepts, and the other way round.
        #[test]
        fn patterns_agree_with_the_validators(s in "[A-Za-z0-9_. -]{0,70}|\\PC{0,8}|[\\x00-\\x20]{1,3}|[a \u{61c}\u{200b}-\u{2010}\u{2028}-\u{206a}\u{feff}]{1,4}") {
            let matches = |p: &str| regex::Regex::new(p).expect("pattern").is_match(&s);
            proptest::prop_assert_eq!(
                matches(crate::server::tenants::resolve::SLUG_PATTERN),
                crate::server::tenants::resolve::valid_slug(&s)
            );
            proptest::prop_assert_eq!(
                matches(crate::server::tenants::resolve::NAME_PATTERN) && s.chars().count() <= 200,
                crate::server::tenants::resolve::invalid_name(&s).is_none()
            );
            proptest::prop_assert_eq!(matches(SiteId::PATTERN), SiteId::is_valid(&s));
            proptest::prop_assert_eq!(matches(PersonId::PATTERN), PersonId::is_valid(&s));
            proptest::prop_assert_eq!(matches(ModelName::PATTERN), ModelName::is_valid(&s));
        }
    }

    fn all_ids(doc: &Value) -> Vec<String> {
        operations(doc)
            .iter()
            .filter_map(|(_, _, op)| op["operationId"].as_str().map(str::to_owned))
            .collect()
    }

    #[test]
    fn created_objects_link_to_their_operations() {
        let doc = spec();
        let links = &doc["paths"]["/api/v1/sites"]["post"]["responses"]["201"]["links"];
        let ids: Vec<&str> = links
            .as_object()
            .expect("links")
            .values()
            .filter_map(|l| l["operationId"].as_str())
            .collect();
        assert_eq!(ids.len(), 3, "{links}");
        let item = &doc["paths"]["/api/v1/sites/{id}"];
        for method in ["get", "patch", "delete"] {
            let id = item[method]["operationId"].as_str().expect("operationId");
            assert!(ids.contains(&id), "{id} in {ids:?}");
        }
        let mut unique = all_ids(&doc);
        let n = unique.len();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), n, "operation ids repeat: {unique:?}");
        // Every link names an operation that exists.
        let all = all_ids(&doc);
        for (from, _, _, _, _) in LINKS {
            let (method, path) = from.split_once(' ').expect("method path");
            let responses = &doc["paths"][path][method]["responses"];
            let found = responses
                .as_object()
                .into_iter()
                .flatten()
                .flat_map(|(_, r)| r["links"].as_object().into_iter().flatten())
                .map(|(_, l)| l["operationId"].as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>();
            assert!(!found.is_empty(), "{from} has no links");
            for id in found {
                assert!(all.contains(&id), "{from} links to unknown {id}");
            }
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = spec();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        for part in text.split("\"#/components/schemas/").skip(1) {
            let name = part.split('"').next().unwrap_or_default();
            assert!(schemas.contains_key(name), "dangling $ref to {name}");
        }
    }
}
