//! `codestats clickhouse start|stop|status`: the data dir's local server,
//! run in the background for scripts and the test suite.

use crate::{cli::ClickhouseCommand, config::Config};
use anyhow::{Context, bail};
use sql::local_server::{self, LocalServerConfig};

pub async fn run(config: &Config, cmd: ClickhouseCommand) -> anyhow::Result<()> {
    let local = LocalServerConfig::for_data_dir(&config.data_dir);
    match cmd {
        ClickhouseCommand::Start => {
            local_server::start_detached(&local)
                .await
                .context("cannot start the local clickhouse")?;
            println!("{}", local.url());
        }
        ClickhouseCommand::Stop => {
            local_server::stop_detached(&local)
                .await
                .context("cannot stop the local clickhouse")?;
        }
        ClickhouseCommand::Status => {
            if !local_server::ping(local.http_port).await {
                bail!("no clickhouse answers at {}", local.url());
            }
            let db = sql::Db::new(&local.url(), &config.clickhouse)?;
            println!("{} {}", local.url(), db.version().await?);
        }
    }
    Ok(())
}
