pub fn run(_a: &Args) -> anyhow::Result<()> {
    anyhow::bail!("test: not built yet")
}
#[derive(clap::Args)]
pub struct Args {}
