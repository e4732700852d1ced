use std::io::IsTerminal;

use anyhow::Context;
use rollcall_models::{Fetcher, Group, Manifest, Outcome, Store};

#[derive(clap::Args, Default)]
pub struct Args {
    /// Only these groups (runtime, models, samples); all of them when absent.
    #[arg(long = "group")]
    pub groups: Vec<Group>,
}

/// Fetches the manifest's artefacts and prints what it did; returns the store.
pub fn run(args: &Args) -> anyhow::Result<Store> {
    let manifest = Manifest::embedded()?;
    let store = Store::from_env()?;
    let wanted: Vec<_> = manifest
        .artefacts()
        .iter()
        .filter(|a| args.groups.is_empty() || args.groups.contains(&a.group))
        .collect();
    let report = Fetcher::new(&manifest, &store)
        .with_progress(std::io::stderr().is_terminal())
        .fetch(&wanted)
        .with_context(|| format!("fetching into {}", store.root().display()))?;
    for (name, outcome) in &report.items {
        let what = match outcome {
            Outcome::Cached => "verified (cached)",
            Outcome::Fetched => "fetched and verified",
            Outcome::Converted => "source verified, converted to ONNX",
        };
        println!("  {name:<28} {what}");
    }
    println!(
        "fetch: {} artefacts ready in {}",
        report.items.len(),
        store.root().display()
    );
    Ok(store)
}
