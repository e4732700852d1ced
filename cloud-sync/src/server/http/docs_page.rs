//! The OpenAPI document rendered as one HTML page (`GET /docs`): operations by tag with their
//! parameters, bodies and answers, then every schema. Self-contained — no scripts, fonts or
//! styles from elsewhere — so it reads the same at an air-gapped site.

use std::fmt::Write;

use serde_json::Value;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d232a}\
header{background:#1d3557;color:#fff;padding:1.2em 2em}header h1{margin:0}\
main{display:grid;grid-template-columns:17em 1fr}nav{padding:1em;border-right:1px solid #ddd;font-size:13px}\
nav a{display:block;color:#1d3557;text-decoration:none}nav h3{margin:1em 0 .2em}\
article{padding:1em 2em;max-width:70em}section.op{border:1px solid #ddd;border-radius:6px;margin:1em 0;padding:.6em 1em}\
.m{display:inline-block;min-width:4.5em;text-align:center;border-radius:4px;color:#fff;font-weight:bold;margin-right:.6em}\
.get{background:#2a9d8f}.post{background:#e76f51}.patch{background:#f4a261}.put{background:#8d5a97}.delete{background:#c0392b}\
code,.path{font-family:ui-monospace,monospace}.path{font-weight:bold}.dep{color:#c0392b;font-weight:bold}\
table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #ddd;padding:.2em .6em;text-align:left;vertical-align:top}\
th{background:#f3f5f7}.lock{color:#666;font-size:13px}";

/// The page for `doc`, an OpenAPI 3.1 document.
pub fn render(doc: &Value) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let title = text(&doc["info"]["title"]);
    let _ = write!(
        out,
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>{t}</title><style>{STYLE}</style></head><body>\
         <header><h1>{t}</h1>version {v} · OpenAPI {o} · <a style=color:#fff href=/api/openapi.json>openapi.json</a></header><main><nav>",
        t = esc(&title),
        v = esc(&text(&doc["info"]["version"])),
        o = esc(&text(&doc["openapi"])),
    );
    let tags = tags(doc);
    let ops = operations(doc);
    for (tag, _) in &tags {
        let _ = write!(out, "<h3>{}</h3>", esc(tag));
        for op in ops.iter().filter(|o| &o.tag == tag) {
            let _ = write!(
                out,
                "<a href=#{}>{} {}</a>",
                op.anchor(),
                op.method.to_ascii_uppercase(),
                esc(&op.path)
            );
        }
    }
    out.push_str("<h3>Schemas</h3>");
    let schemas = doc["components"]["schemas"].as_object();
    for name in schemas.into_iter().flat_map(|s| s.keys()) {
        let _ = write!(out, "<a href=#schema-{0}>{0}</a>", esc(name));
    }
    out.push_str("</nav><article>");
    out.push_str(&markdown(&text(&doc["info"]["description"])));
    for (tag, description) in &tags {
        let _ = write!(out, "<h2>{}</h2><p>{}</p>", esc(tag), esc(description));
        for op in ops.iter().filter(|o| &o.tag == tag) {
            operation(&mut out, op);
        }
    }
    out.push_str("<h2>Schemas</h2>");
    for (name, schema) in schemas.into_iter().flatten() {
        let _ = write!(out, "<section id=schema-{0}><h3>{0}</h3>", esc(name));
        schema_body(&mut out, schema);
        out.push_str("</section>");
    }
    out.push_str("</article></main></body></html>");
    out
}

struct Operation<'a> {
    path: String,
    method: &'static str,
    tag: String,
    op: &'a Value,
}

impl Operation<'_> {
    fn anchor(&self) -> String {
        let path: String = self
            .path
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        format!("op-{}{path}", self.method)
    }
}

fn tags(doc: &Value) -> Vec<(String, String)> {
    doc["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| (text(&t["name"]), text(&t["description"])))
        .collect()
}

fn operations(doc: &Value) -> Vec<Operation<'_>> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                out.push(Operation {
                    path: path.clone(),
                    method,
                    tag: text(&op["tags"][0]),
                    op,
                });
            }
        }
    }
    out
}

fn operation(out: &mut String, o: &Operation<'_>) {
    let op = o.op;
    let _ = write!(
        out,
        "<section class=op id={}><span class='m {m}'>{M}</span><span class=path>{p}</span> — {s}",
        o.anchor(),
        m = o.method,
        M = o.method.to_ascii_uppercase(),
        p = esc(&o.path),
        s = esc(&text(&op["summary"])),
    );
    if op["deprecated"] == true {
        out.push_str(" <span class=dep>deprecated</span>");
    }
    if let Some(security) = op["security"].as_array() {
        let names: Vec<String> = security
            .iter()
            .filter_map(Value::as_object)
            .flat_map(|s| s.keys().cloned())
            .collect();
        let _ = write!(
            out,
            " <span class=lock>credential: {}</span>",
            esc(&names.join(", "))
        );
    }
    let description = text(&op["description"]);
    if !description.is_empty() {
        out.push_str(&markdown(&description));
    }
    if let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
        out.push_str(
            "<table><tr><th>parameter</th><th>in</th><th>type</th><th>description</th></tr>",
        );
        for p in params {
            let _ = write!(
                out,
                "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&text(&p["name"])),
                if p["required"] == true { " *" } else { "" },
                esc(&text(&p["in"])),
                type_of(&p["schema"]),
                inline(&text(&p["description"])),
            );
        }
        out.push_str("</table>");
    }
    if let Some(content) = op["requestBody"]["content"].as_object() {
        for (media, body) in content {
            let _ = write!(
                out,
                "<p>Body ({}): {}</p>",
                esc(media),
                type_of(&body["schema"])
            );
        }
    }
    out.push_str("<table><tr><th>status</th><th>answer</th><th>body</th></tr>");
    for (status, response) in op["responses"].as_object().into_iter().flatten() {
        let body = response["content"]
            .as_object()
            .and_then(|c| c.values().next())
            .map(|c| type_of(&c["schema"]))
            .unwrap_or_default();
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{body}</td></tr>",
            esc(status),
            inline(&text(&response["description"])),
        );
    }
    out.push_str("</table></section>");
}

fn schema_body(out: &mut String, schema: &Value) {
    let description = text(&schema["description"]);
    if !description.is_empty() {
        let _ = write!(out, "<p>{}</p>", inline(&description));
    }
    if let Some(values) = schema["enum"].as_array() {
        let list: Vec<String> = values
            .iter()
            .map(|v| format!("<code>{}</code>", esc(&v.to_string())))
            .collect();
        let _ = write!(out, "<p>One of {}</p>", list.join(", "));
        return;
    }
    if let Some(parts) = schema["allOf"].as_array() {
        for part in parts {
            if part.get("$ref").is_some() {
                let _ = write!(out, "<p>Everything of {}, and:</p>", type_of(part));
            } else {
                schema_body(out, part);
            }
        }
        return;
    }
    let Some(props) = schema["properties"].as_object() else {
        let _ = write!(out, "<p>{}</p>", type_of(schema));
        return;
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    out.push_str("<table><tr><th>field</th><th>type</th><th>description</th></tr>");
    for (name, prop) in props {
        let _ = write!(
            out,
            "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            if required.contains(&name.as_str()) {
                " *"
            } else {
                ""
            },
            type_of(prop),
            inline(&text(&prop["description"])),
        );
    }
    out.push_str("</table>");
    if schema["additionalProperties"] == false {
        out.push_str("<p class=lock>Other fields are refused.</p>");
    }
}

/// A schema as a short HTML phrase: `string`, `array of <a>User</a>`, `integer | null`, …
fn type_of(schema: &Value) -> String {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("<a href=#schema-{0}>{0}</a>", esc(name));
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(parts) = schema[key].as_array() {
            let joiner = if key == "allOf" { " &amp; " } else { " | " };
            return parts.iter().map(type_of).collect::<Vec<_>>().join(joiner);
        }
    }
    if let Some(values) = schema["enum"].as_array() {
        return values
            .iter()
            .map(|v| format!("<code>{}</code>", esc(&v.to_string())))
            .collect::<Vec<_>>()
            .join(" | ");
    }
    let kinds: Vec<String> = match &schema["type"] {
        Value::String(t) => vec![t.clone()],
        Value::Array(ts) => ts.iter().map(text).collect(),
        _ => return "any".into(),
    };
    kinds
        .iter()
        .map(|k| match k.as_str() {
            "array" => format!("array of {}", type_of(&schema["items"])),
            "null" => "null".into(),
            other => {
                let format = text(&schema["format"]);
                if format.is_empty() {
                    esc(other)
                } else {
                    format!("{} ({})", esc(other), esc(&format))
                }
            }
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The little Markdown the document's descriptions use: paragraphs, `code` and **bold**.
fn markdown(s: &str) -> String {
    let mut out = String::new();
    for para in s.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        let _ = write!(out, "<p>{}</p>", inline(para));
    }
    out
}

/// `code` and **bold** in one line of text, escaped.
fn inline(s: &str) -> String {
    let mut out = String::new();
    for (i, piece) in esc(s).split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{piece}</code>");
        } else {
            for (j, part) in piece.split("**").enumerate() {
                if j % 2 == 1 {
                    let _ = write!(out, "<b>{part}</b>");
                } else {
                    out.push_str(part);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_lists_every_operation_and_schema() {
        let doc = crate::server::http::openapi::spec();
        let page = render(&doc);
        assert!(page.starts_with("<!doctype html>"));
        for op in operations(&doc) {
            assert!(
                page.contains(&format!("id={}", op.anchor())),
                "{} {}",
                op.method,
                op.path
            );
        }
        for name in doc["components"]["schemas"]
            .as_object()
            .expect("schemas")
            .keys()
        {
            assert!(page.contains(&format!("id=schema-{name}>")), "{name}");
        }
        // Nothing is loaded from elsewhere.
        for loader in ["<script", "<link", " src=", "url(", "@import"] {
            assert!(!page.contains(loader), "{loader}");
        }
    }

    #[test]
    fn text_from_the_document_is_escaped() {
        let doc = serde_json::json!({
            "openapi": "3.1.0",
            "info": { "title": "<script>alert(1)</script>", "version": "1", "description": "a `<b>` **c**" },
            "tags": [{ "name": "t", "description": "x" }],
            "paths": { "/a/{id}": { "get": { "tags": ["t"], "summary": "\"quoted\"", "responses": {} } } },
        });
        let page = render(&doc);
        assert!(!page.contains("<script>alert"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("a <code>&lt;b&gt;</code> <b>c</b>"));
        assert!(page.contains("&quot;quoted&quot;"));
    }

    #[test]
    fn types_read_as_phrases() {
        let t = |v: Value| type_of(&v);
        assert_eq!(t(serde_json::json!({"type": "string"})), "string");
        assert_eq!(
            t(serde_json::json!({"type": ["integer", "null"], "format": "int64"})),
            "integer (int64) | null"
        );
        assert_eq!(
            t(serde_json::json!({"type": "array", "items": {"$ref": "#/components/schemas/User"}})),
            "array of <a href=#schema-User>User</a>"
        );
        assert_eq!(
            t(serde_json::json!({"enum": ["a", "b"]})),
            "<code>&quot;a&quot;</code> | <code>&quot;b&quot;</code>"
        );
        assert_eq!(t(serde_json::json!({})), "any");
    }
}
