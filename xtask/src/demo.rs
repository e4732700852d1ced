pub fn run(_a: &Args) -> anyhow::Result<()> {
    anyhow::bail!("demo: not built yet")
}
#[derive(clap::Args)]
pub struct Args {}
