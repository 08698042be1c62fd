use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = zoomd::cli::Cli::parse();
    zoomd::cli::run(cli).await
}
