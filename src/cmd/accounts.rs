//! `codestats users …`, `codestats languages …` and `codestats machines …`.

use crate::{
    cli::{InvitesCommand, LanguagesCommand, MachinesCommand, UsersCommand},
    config::Config,
    output::outln,
    store::Store,
};
use chrono::DateTime;
use sql::accounts;

fn date(secs: u32) -> String {
    DateTime::from_timestamp(i64::from(secs), 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

pub async fn users(config: &Config, store: &Store, cmd: UsersCommand) -> anyhow::Result<()> {
    let db = &store.db;
    match cmd {
        UsersCommand::Add {
            name,
            email,
            private,
        } => {
            let user = accounts::add_user(db, &name, &email, private).await?;
            eprintln!(
                "added {} user {:?}",
                if user.is_private() {
                    "private"
                } else {
                    "public"
                },
                user.username
            );
        }
        UsersCommand::List => {
            for user in accounts::list_users(db).await? {
                outln!(
                    "{}\t{}\t{}\t{}",
                    user.username,
                    if user.is_private() {
                        "private"
                    } else {
                        "public"
                    },
                    date(user.created_at),
                    user.email
                )?;
            }
        }
        UsersCommand::Set {
            name,
            private,
            public,
            leaderboards,
            no_leaderboards,
        } => {
            let mut user = accounts::get_user(db, &name).await?;
            if private || public {
                user = accounts::set_user_private(db, user, private).await?;
                eprintln!(
                    "user {:?} is now {}",
                    user.username,
                    if user.is_private() {
                        "private"
                    } else {
                        "public"
                    }
                );
            }
            if leaderboards || no_leaderboards {
                accounts::preferences::set_leaderboards(db, &user, leaderboards).await?;
                eprintln!(
                    "user {:?} is {} the leaderboards (from the next rollup)",
                    user.username,
                    if leaderboards { "on" } else { "off" }
                );
            }
        }
        UsersCommand::ResetPassword { name } => {
            let user = accounts::get_user(db, &name).await?;
            let link = web::reset_link(db, &config.public_url, &user).await?;
            eprintln!(
                "a link that sets a new password for {:?}, once, within {} minutes:",
                user.username,
                web::config::RESET_TTL.as_secs() / 60
            );
            outln!("{link}")?;
        }
        UsersCommand::Delete { name } => {
            let user = accounts::delete_user(db, &name, accounts::DELETE_SETTLE).await?;
            eprintln!(
                "deleted user {:?} with their machines and XP",
                user.username
            );
        }
    }
    Ok(())
}

pub async fn languages(store: &Store, cmd: LanguagesCommand) -> anyhow::Result<()> {
    use sql::languages::aliases;
    let db = &store.db;
    match cmd {
        LanguagesCommand::Alias { from, to } => {
            let alias = aliases::set(db, &from, &to).await?;
            eprintln!(
                "{:?} now shows as {:?}: all history at the next full rollup",
                alias.from, alias.to
            );
        }
        LanguagesCommand::Unalias { from } => {
            let alias = aliases::remove(db, &from).await?;
            eprintln!(
                "{:?} no longer shows as {:?}: all history at the next full rollup",
                alias.from, alias.to
            );
        }
        LanguagesCommand::List => {
            for alias in aliases::Aliases::load(db).await?.iter() {
                outln!(
                    "{}\t{}\t{}",
                    alias.from,
                    alias.to,
                    if alias.default { "default" } else { "set" }
                )?;
            }
        }
    }
    Ok(())
}

pub async fn machines(store: &Store, cmd: MachinesCommand) -> anyhow::Result<()> {
    let db = &store.db;
    match cmd {
        MachinesCommand::Add { user, machine } => {
            let (machine, token) = accounts::add_machine(db, &user, &machine).await?;
            eprintln!(
                "added machine {:?}; its API token follows, shown this once",
                machine.name
            );
            outln!("{token}")?;
        }
        MachinesCommand::List { user } => {
            let user = accounts::get_user(db, &user).await?;
            for m in accounts::list_machines(db, &user).await? {
                outln!(
                    "{}\t{}\t{}",
                    m.name,
                    if m.is_active() { "active" } else { "inactive" },
                    date(m.created_at)
                )?;
            }
        }
        MachinesCommand::Rename {
            user,
            machine,
            new_name,
        } => {
            let m = accounts::rename_machine(db, &user, &machine, &new_name).await?;
            eprintln!("renamed machine {machine:?} to {:?}", m.name);
        }
        MachinesCommand::Regenerate { user, machine } => {
            let (m, token) = accounts::regenerate_token(db, &user, &machine).await?;
            eprintln!(
                "new API token for machine {:?} follows, shown this once; the old one no longer works",
                m.name
            );
            outln!("{token}")?;
        }
        MachinesCommand::Deactivate { user, machine } => {
            accounts::set_machine_active(db, &user, &machine, false).await?;
            eprintln!("machine {machine:?} deactivated: its token is refused, its XP stays");
        }
        MachinesCommand::Activate { user, machine } => {
            accounts::set_machine_active(db, &user, &machine, true).await?;
            eprintln!("machine {machine:?} activated");
        }
        MachinesCommand::Delete { user, machine } => {
            accounts::delete_machine(db, &user, &machine, accounts::DELETE_SETTLE).await?;
            eprintln!("deleted machine {machine:?} and its XP");
        }
    }
    Ok(())
}

pub async fn invites(config: &Config, store: &Store, cmd: InvitesCommand) -> anyhow::Result<()> {
    match cmd {
        InvitesCommand::Create { days } => {
            let ttl = std::time::Duration::from_secs(u64::from(days.max(1)) * 86_400);
            let link = web::invite_link(&store.db, &config.public_url, ttl).await?;
            eprintln!("a one-time sign-up link, valid for {} day(s):", days.max(1));
            outln!("{link}")?;
        }
    }
    Ok(())
}
