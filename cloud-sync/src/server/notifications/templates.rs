//! Mail templates (`minijinja`): a subject, a text part and an HTML part for every kind, built
//! in, which a tenant may replace per kind or for all kinds (`*`). The HTML part escapes
//! everything it is given (a person or site named `<script>` arrives as text); the text part
//! and the subject are plain text. A tenant's template is checked by rendering it with sample
//! data before it is stored, and renders on a fuel budget (no template can spin a worker).

use minijinja::{Environment, context};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::server::notifications::{kinds::Kind, mail::Rendered};

/// One template set, as stored and as the API takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Templates {
    #[schema(max_length = 2000)]
    pub subject: String,
    #[schema(max_length = 65536)]
    pub text: String,
    #[schema(max_length = 65536)]
    pub html: String,
}

/// Each part's longest source.
pub const MAX_SUBJECT: usize = 2000;
pub const MAX_PART: usize = 65_536;
/// The instructions one rendering may spend.
const FUEL: u64 = 200_000;

const SUBJECT: &str = "[{{ tenant }}] {% if digest %}{{ notifications|length }} notifications: \
{{ kind.description }}{% else %}{{ notifications[0].title }}{% endif %}";

const TEXT: &str = "Hello {{ recipient.display_name }},

{% for n in notifications %}{{ n.title }}{% if n.critical %} (critical){% endif %}
{{ n.body }}
{{ n.time }}

{% endfor %}--
rollcall, {{ tenant }}. What you get by mail is set in your notification preferences.
";

const HTML: &str = "<!doctype html>
<html><body style=\"font-family: sans-serif\">
<p>Hello {{ recipient.display_name }},</p>
{% for n in notifications %}<h2>{{ n.title }}{% if n.critical %} <strong style=\"color:#b00\">(critical)</strong>{% endif %}</h2>
<p>{{ n.body }}</p>
<p><small>{{ n.time }}</small></p>
{% endfor %}<hr>
<p><small>rollcall, {{ tenant }}. What you get by mail is set in your notification preferences.</small></p>
</body></html>
";

/// The built-in set.
pub fn builtin() -> Templates {
    Templates {
        subject: SUBJECT.into(),
        text: TEXT.into(),
        html: HTML.into(),
    }
}

/// One notification as templates see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    pub id: String,
    pub kind: String,
    pub critical: bool,
    pub title: String,
    pub body: String,
    pub data: serde_json::Value,
    /// When it was made, in the recipient's zone (RFC 3339).
    pub time: String,
}

/// What a mail is rendered from.
#[derive(Debug, Clone, PartialEq)]
pub struct Context<'a> {
    pub tenant: &'a str,
    pub recipient_name: &'a str,
    pub recipient_email: &'a str,
    pub kind: &'a Kind,
    /// One, or a digest's many (oldest first).
    pub items: &'a [Item],
}

/// Why a template set cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the {part} template: {why}")]
pub struct TemplateError {
    pub part: &'static str,
    pub why: String,
}

/// Renders `t` for `cx`.
pub fn render(t: &Templates, cx: &Context<'_>) -> Result<Rendered, TemplateError> {
    let mut env = Environment::new();
    env.set_fuel(Some(FUEL));
    for (name, source, part) in [
        ("subject.txt", &t.subject, "subject"),
        ("text.txt", &t.text, "text"),
        ("html.html", &t.html, "html"),
    ] {
        env.add_template_owned(name.to_owned(), source.clone())
            .map_err(|e| TemplateError {
                part,
                why: detail(&e),
            })?;
    }
    let data = context! {
        tenant => cx.tenant,
        recipient => context! { display_name => cx.recipient_name, email => cx.recipient_email },
        kind => context! { name => cx.kind.name, description => cx.kind.description, critical => cx.kind.critical },
        digest => cx.items.len() > 1,
        notifications => cx.items,
    };
    let part = |name: &str, part: &'static str| {
        env.get_template(name)
            .and_then(|t| t.render(&data))
            .map_err(|e| TemplateError {
                part,
                why: detail(&e),
            })
    };
    Ok(Rendered {
        subject: crate::server::notifications::mail::one_line(&part("subject.txt", "subject")?),
        text: part("text.txt", "text")?,
        html: part("html.html", "html")?,
    })
}

fn detail(e: &minijinja::Error) -> String {
    match (e.detail(), e.line()) {
        (Some(d), Some(l)) => format!("{} (line {l}): {d}", e.kind()),
        (None, Some(l)) => format!("{} (line {l})", e.kind()),
        (Some(d), None) => format!("{}: {d}", e.kind()),
        (None, None) => e.kind().to_string(),
    }
}

/// Checks a tenant's set: sizes, and a rendering with sample data for `kind`.
pub fn check(t: &Templates, kind: &Kind) -> Result<(), TemplateError> {
    for (part, source, max) in [
        ("subject", &t.subject, MAX_SUBJECT),
        ("text", &t.text, MAX_PART),
        ("html", &t.html, MAX_PART),
    ] {
        if source.len() > max {
            return Err(TemplateError {
                part,
                why: format!("at most {max} bytes"),
            });
        }
        if source.contains('\0') {
            return Err(TemplateError {
                part,
                why: "holds a NUL character".into(),
            });
        }
    }
    let sample = |n: u32| Item {
        id: format!("ntf_sample{n}"),
        kind: kind.name.into(),
        critical: kind.critical,
        title: format!("Sample notification {n}"),
        body: "What happened, in a sentence.".into(),
        data: serde_json::json!({ "site_id": "hq" }),
        time: "2026-01-01T08:00:00+00:00".into(),
    };
    for items in [vec![sample(1)], vec![sample(1), sample(2)]] {
        render(
            t,
            &Context {
                tenant: "sample",
                recipient_name: "Sam Sample",
                recipient_email: "sam@example.com",
                kind,
                items: &items,
            },
        )?;
    }
    Ok(())
}

impl crate::server::store::Store {
    /// The tenant's own templates for `kind` (or `*`), if it has them.
    pub async fn mail_template(
        &self,
        scope: &crate::server::store::TenantScope,
        kind: &str,
    ) -> Result<Option<Templates>, crate::server::store::StoreError> {
        let kind = kind.to_owned();
        crate::server::store::exec::in_tenant!(read self, scope, |tx| tx.query_opt(
            "SELECT subject, text, html FROM mail_templates WHERE tenant_id = $1 AND kind = $2",
            &[&tx.tenant(), &kind],
            |r| Ok(Templates { subject: r.get(0)?, text: r.get(1)?, html: r.get(2)? }),
        ))
    }

    /// Stores the tenant's templates for `kind` (or `*`), replacing any.
    pub async fn put_mail_template(
        &self,
        scope: &crate::server::store::TenantScope,
        kind: &str,
        t: &Templates,
        audit: crate::server::audit::store::Audit,
    ) -> Result<(), crate::server::store::StoreError> {
        let (kind, t) = (kind.to_owned(), t.clone());
        crate::server::store::exec::in_tenant!(write self, scope, audit, |tx| async move {
            tx.execute(
                "INSERT INTO mail_templates (tenant_id, kind, subject, text, html, updated_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (tenant_id, kind) DO UPDATE
                 SET subject = excluded.subject, text = excluded.text, html = excluded.html,
                     updated_ms = excluded.updated_ms",
                &[&tx.tenant(), &kind, &t.subject, &t.text, &t.html, &rollcall_service::clock::now_ms()],
            )
            .await
            .map(drop)
        })
    }

    /// Drops the tenant's templates for `kind`; whether it had them.
    pub async fn delete_mail_template(
        &self,
        scope: &crate::server::store::TenantScope,
        kind: &str,
        audit: crate::server::audit::store::Audit,
    ) -> Result<bool, crate::server::store::StoreError> {
        let kind = kind.to_owned();
        crate::server::store::exec::in_tenant!(write self, scope, audit, |tx| async move {
            Ok::<_, crate::server::store::StoreError>(
                tx.execute(
                    "DELETE FROM mail_templates WHERE tenant_id = $1 AND kind = $2",
                    &[&tx.tenant(), &kind],
                )
                .await?
                > 0,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::notifications::kinds::{TAMPER, kind};

    fn item(title: &str, body: &str) -> Item {
        Item {
            id: "ntf_1".into(),
            kind: TAMPER.into(),
            critical: true,
            title: title.into(),
            body: body.into(),
            data: serde_json::Value::Null,
            time: "2026-06-01T09:00:00+02:00".into(),
        }
    }

    fn cx<'a>(items: &'a [Item], name: &'a str) -> Context<'a> {
        Context {
            tenant: "acme",
            recipient_name: name,
            recipient_email: "a@example.com",
            kind: kind(TAMPER).expect("kind"),
            items,
        }
    }

    #[test]
    fn the_html_part_escapes_what_it_is_given_and_the_text_part_does_not() {
        let items = [item("Tamper at <script>alert(1)</script>", "cover & lid")];
        let m = render(&builtin(), &cx(&items, "<b>Ann</b>")).expect("render");
        assert_eq!(m.subject, "[acme] Tamper at <script>alert(1)</script>");
        assert!(
            m.html
                .contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{}",
            m.html
        );
        assert!(m.html.contains("&lt;b&gt;Ann&lt;&#x2f;b&gt;") && !m.html.contains("<script>"));
        assert!(m.html.contains("cover &amp; lid"));
        assert!(m.text.contains("Hello <b>Ann</b>,") && m.text.contains("(critical)"));
    }

    #[test]
    fn a_digest_lists_every_notification() {
        let items = [item("one", "a"), item("two", "b"), item("three", "c")];
        let m = render(&builtin(), &cx(&items, "Ann")).expect("render");
        assert!(
            m.subject.starts_with("[acme] 3 notifications"),
            "{}",
            m.subject
        );
        for t in ["one", "two", "three"] {
            assert!(m.text.contains(t) && m.html.contains(t), "{t}");
        }
    }

    proptest::proptest! {
        /// Whatever a tenant sends as a template, checking it answers (never panics or spins),
        /// and a set that passes the check renders for a real notification.
        #[test]
        fn any_template_is_checked_without_harm(
            subject in "[{}%#a-z |()0-9.\\[\\]'\"<>=-]{0,60}",
            text in "(\\{\\{ ?[a-z_.()|\\[\\]0-9]{0,20} ?\\}\\}|\\{% ?(for|if|endfor|endif|set|raw|macro) [a-z =0-9()]{0,20} ?%\\}|[a-z \\n<>&]{0,10}){0,12}",
        ) {
            let k = kind(TAMPER).expect("kind");
            let t = Templates { subject, text, html: HTML.into() };
            if check(&t, k).is_ok() {
                let items = [item("t", "b")];
                proptest::prop_assert!(render(&t, &cx(&items, "Ann")).is_ok());
            }
        }
    }

    #[test]
    fn a_broken_or_endless_template_is_refused_with_where() {
        let k = kind(TAMPER).expect("kind");
        let mut t = builtin();
        t.text = "line one\n{% for x in %}".into();
        let e = check(&t, k).expect_err("syntax");
        assert_eq!(e.part, "text");
        assert!(e.why.contains("line 2"), "{}", e.why);
        let mut t = builtin();
        t.html =
            "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}"
                .into();
        let e = check(&t, k).expect_err("fuel");
        assert_eq!(e.part, "html");
        assert!(check(&builtin(), k).is_ok());
    }
}
