//! One module per command.

mod accounts;
mod backup;
mod bench;
mod build;
mod clickhouse;
mod doctor;
mod import;
mod serve;
pub use serve::take_passed_socket;
pub(crate) mod sql;

use crate::{
    cli::{Cli, Command},
    config::Config,
    output::outln,
    store::Store,
};

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::new(cli.data_dir);
    match cli.command {
        Command::Serve {
            listen,
            metrics_listen,
            role,
        } => serve::run(&config, listen, &metrics_listen, &role).await,
        Command::Clickhouse(cmd) => clickhouse::run(&config, cmd).await,
        Command::Migrate => {
            with_store(&config, async |store| {
                outln!("database {} is up to date", store.db.database())?;
                Ok(())
            })
            .await
        }
        Command::Users(cmd) => {
            with_store(&config, async |store| {
                accounts::users(&config, store, cmd).await
            })
            .await
        }
        Command::Languages(cmd) => {
            with_store(&config, async |store| accounts::languages(store, cmd).await).await
        }
        Command::Invites(cmd) => {
            with_store(&config, async |store| {
                accounts::invites(&config, store, cmd).await
            })
            .await
        }
        Command::Machines(cmd) => {
            with_store(&config, async |store| accounts::machines(store, cmd).await).await
        }
        Command::Sql(args) => sql::run(&config, args).await,
        Command::Doctor => doctor::run(&config).await,
        Command::Backup { dir, keep } => {
            with_store(&config, async |store| {
                backup::backup(&config, store, &dir, keep).await
            })
            .await
        }
        Command::Restore { dump, no_build } => {
            with_store(&config, async |store| {
                backup::restore(&config, store, &dump, no_build).await
            })
            .await
        }
        Command::Build { full, users } => {
            with_store(&config, async |store| {
                build::build(&config, store, full, users).await
            })
            .await
        }
        Command::Import {
            file,
            user,
            format,
            machine,
            no_build,
        } => {
            with_store(&config, async |store| {
                import::run(&config, store, &file, &user, format, machine, no_build).await
            })
            .await
        }
        Command::Bench(crate::cli::BenchCommand::Rollups { users, days, dirty }) => {
            with_store(&config, async |store| {
                bench::rollups(&config, store, users, days, dirty).await
            })
            .await
        }
        Command::Seed {
            users,
            days,
            seed,
            prefix,
            private_share,
        } => {
            let options = jobs::seed::SeedOptions {
                users,
                days,
                seed,
                prefix,
                private_share,
            };
            with_store(&config, async |store| build::seed(store, &options).await).await
        }
    }
}

/// Runs `f` on a migrated store, then closes the store whatever `f` returned.
async fn with_store(
    config: &Config,
    f: impl AsyncFnOnce(&Store) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let store = Store::open_migrated(config).await?;
    let result = f(&store).await;
    store.close().await;
    result
}
