//! Prints the assessment of a check-in context as a table and as JSON:
//!
//! ```sh
//! cargo run -p rollcall-fraud --example assess -- context.json [policy.toml]
//! ```
//! `context.json` is a `CheckInContext` (see the crate docs and `tests/scenarios/` for the
//! fields); `policy.toml` overrides the default policy.

use std::process::ExitCode;

use rollcall_fraud::{CheckInContext, Policy, assess};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(context_path) = args.first() else {
        eprintln!("usage: assess CONTEXT.json [POLICY.toml]");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(context_path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{context_path}: {e}");
            return ExitCode::from(2);
        }
    };
    let ctx: CheckInContext = match serde_json::from_str(&text) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{context_path}: {e}");
            return ExitCode::from(2);
        }
    };
    let policy = match args.get(1) {
        None => Policy::default(),
        Some(p) => match std::fs::read_to_string(p)
            .map_err(|e| e.to_string())
            .and_then(|t| Policy::from_toml(p, &t).map_err(|e| e.to_string()))
        {
            Ok(policy) => policy,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        },
    };
    let a = assess(&ctx, &policy);
    println!("verdict {:?}   score {}", a.verdict, a.explain());
    if let Some(code) = a.denied_outright_by {
        println!("denied outright by {code}");
    }
    println!("{:<24} {:>6}  why", "code", "weight");
    for r in &a.reasons {
        println!("{:<24} {:>6.2}  {}", r.code.as_str(), r.weight, r.text);
        for (k, v) in &r.values {
            println!("{:<24} {:>6}  {k} = {v:.3}", "", "");
        }
    }
    match serde_json::to_string_pretty(&a) {
        Ok(json) => println!("{json}"),
        Err(e) => eprintln!("cannot print JSON: {e}"),
    }
    ExitCode::SUCCESS
}
