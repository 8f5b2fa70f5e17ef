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
            local
                .running_credentials()
                .await
                .context("cannot log in to the local clickhouse")?;
            let writer = local.clickhouse_config(&config.clickhouse.database)?;
            let db = sql::Db::new(&local.url(), &writer)?;
            println!("{} {}", local.url(), db.version().await?);
            // How to connect by hand: each client config holds its user's
            // password, so none appears on a command line.
            for user in [local_server::WRITER_USER, local_server::ANALYST_USER] {
                println!(
                    "clickhouse-client --config-file {} --database {}",
                    shell_quote(&local.client_config_path(user).display().to_string()),
                    shell_quote(&writer.database),
                );
            }
        }
    }
    Ok(())
}

/// `text` as one single-quoted shell word.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}
