//! The demo's notification step: a supervisor of the tenant, a real SMTP server on loopback
//! (aiosmtpd, from the test venv) that the cloud mails through, and — once the reader's tamper
//! alarm has synced — the mail it caught and the supervisor's inbox.

use std::{path::Path, time::Duration};

use rollcall_tests::{Cloud, SmtpSink};
use serde_json::json;

pub const SUPERVISOR: &str = "sam@acme.example";
pub const PASSWORD: &str = "demo supervisor password";

/// The SMTP server the demo's cloud mails through.
pub fn start(dir: &Path) -> anyhow::Result<SmtpSink> {
    Ok(SmtpSink::start(dir)?)
}

/// The arguments that point the cloud at `sink`.
pub fn cloud_args(sink: &SmtpSink) -> Vec<String> {
    vec![
        "--smtp-url".into(),
        sink.url(),
        "--mail-from".into(),
        "rollcall demo <alerts@acme.example>".into(),
    ]
}

/// A supervisor, who gets the site's alarms in their inbox and, for critical ones, by mail.
pub fn add_supervisor(cloud: &Cloud) -> anyhow::Result<()> {
    let (status, u) = cloud.admin_post(
        "/api/v1/users",
        &json!({ "email": SUPERVISOR, "display_name": "Sam Supervisor", "role": "supervisor",
                 "password": PASSWORD }),
    )?;
    anyhow::ensure!(status == 201, "creating the supervisor: {status} {u}");
    Ok(())
}

/// Prints the tamper alarm's mail and the supervisor's inbox; adds what went wrong to `wrong`.
pub fn report(cloud: &Cloud, sink: &SmtpSink, wrong: &mut Vec<String>) -> anyhow::Result<()> {
    println!("\n== notifications");
    let (status, s) = cloud.call(
        "POST",
        "/api/v1/auth/login",
        None,
        Some(&json!({ "tenant": "acme", "email": SUPERVISOR, "password": PASSWORD })),
        None,
    )?;
    anyhow::ensure!(status == 200, "the supervisor's login: {status} {s}");
    let token = s["access_token"].as_str().unwrap_or_default();
    let (_, inbox) = cloud.call("GET", "/api/v1/notifications", Some(token), None, None)?;
    println!(
        "  Sam Supervisor's inbox: {} unread",
        inbox["unread"].as_u64().unwrap_or(0)
    );
    for n in inbox["items"].as_array().into_iter().flatten() {
        println!(
            "    {} {}{}",
            n["kind"].as_str().unwrap_or("?"),
            n["title"].as_str().unwrap_or("?"),
            if n["critical"] == true {
                " (critical)"
            } else {
                ""
            }
        );
    }
    let mails = sink.wait_for(1, Duration::from_secs(20));
    match mails.iter().find(|m| m.subject.contains("Tamper")) {
        Some(m) => {
            println!(
                "  mail caught by the local SMTP server (aiosmtpd, 127.0.0.1:{}):",
                sink.port
            );
            println!("    From:    {}", m.from);
            println!("    To:      {}", m.to);
            println!("    Subject: {}", m.subject);
            let parts = match (&m.text, &m.html) {
                (Some(_), Some(_)) => "text and HTML",
                (Some(_), None) => "text only",
                _ => "no text part",
            };
            println!("    Parts:   {parts}");
            for line in m.text.as_deref().unwrap_or_default().lines().take(4) {
                println!("    | {line}");
            }
        }
        None => wrong.push(format!(
            "the tamper alarm's mail did not reach the local SMTP server (got {} mail)",
            mails.len()
        )),
    }
    if !inbox["items"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|n| n["kind"] == "alarm.tamper")
    {
        wrong.push(format!(
            "the supervisor's inbox has no tamper alarm: {inbox}"
        ));
    }
    Ok(())
}
