//! `codestats seed`: a synthetic but realistic data set, for demos and
//! benchmarks. Languages follow a Zipf distribution, people code on working
//! days in working hours of their own time zone, from one to three machines.
//! Deterministic for a given seed.

use anyhow::Context;
use rand::{Rng, SeedableRng, distr::weighted::WeightedIndex, prelude::Distribution, rngs::StdRng};
use sql::{
    Db,
    accounts::{self, Machine, User},
    languages::LanguageRow,
    pulses::PulseRow,
    token,
};

/// Languages in order of popularity; weight of the k-th is 1/k^[`ZIPF_S`].
pub const LANGUAGES: &[&str] = &[
    "JavaScript",
    "Python",
    "TypeScript",
    "Java",
    "C#",
    "C++",
    "PHP",
    "Rust",
    "Go",
    "C",
    "Kotlin",
    "Ruby",
    "Swift",
    "Shell",
    "HTML",
    "CSS",
    "SQL",
    "Elixir",
    "Scala",
    "Haskell",
    "Lua",
    "Dart",
    "R",
    "Markdown",
    "YAML",
    "Clojure",
    "OCaml",
    "Erlang",
    "Zig",
    "Nim",
];
pub const ZIPF_S: f64 = 1.1;
/// Rows per INSERT.
const CHUNK_ROWS: usize = 500_000;
const OFFSETS: &[i16] = &[-480, -300, -180, 0, 60, 120, 180, 330, 540, 600];
const MACHINE_NAMES: &[&str] = &["laptop", "desktop", "work", "server"];

#[derive(Debug, Clone)]
pub struct SeedOptions {
    pub users: usize,
    pub days: u32,
    pub seed: u64,
    /// Usernames are `PREFIX` + number.
    pub prefix: String,
    /// Share of users made private.
    pub private_share: f64,
}

#[derive(Debug, Default)]
pub struct SeedReport {
    pub users: usize,
    pub machines: usize,
    pub rows: usize,
    pub xp: u64,
}

pub async fn seed(db: &Db, options: &SeedOptions) -> anyhow::Result<SeedReport> {
    let mut rng = StdRng::seed_from_u64(options.seed);
    let now = chrono::Utc::now().timestamp();
    let zipf = WeightedIndex::new((1..=LANGUAGES.len()).map(|k| 1.0 / (k as f64).powf(ZIPF_S)))?;
    let mut report = SeedReport::default();

    let mut users = Vec::with_capacity(options.users);
    let mut machines = Vec::new();
    for i in 0..options.users {
        let created_at =
            (now - i64::from(options.days) * 86400 - rng.random_range(0..86400 * 30)) as u32;
        let user = User {
            user_id: accounts::fresh_id(),
            username: format!("{}{i}", options.prefix),
            username_key: sql::names::fold(&format!("{}{i}", options.prefix)),
            email: String::new(),
            private: u8::from(rng.random::<f64>() < options.private_share),
            created_at,
            deleted: 0,
            version: accounts::fresh_version(),
        };
        for name in MACHINE_NAMES.iter().take(rng.random_range(1..=3)) {
            machines.push(Machine {
                machine_id: accounts::fresh_id(),
                user_id: user.user_id,
                name: (*name).to_owned(),
                token_hash: token::hash_hex(&token::generate()),
                active: 1,
                created_at,
                deleted: 0,
                version: accounts::fresh_version(),
            });
        }
        users.push(user);
    }
    accounts::insert_users(db, &users)
        .await
        .context("cannot insert users")?;
    accounts::insert_machines(db, &machines)
        .await
        .context("cannot insert machines")?;
    report.users = users.len();
    report.machines = machines.len();
    sql::languages::insert(
        db,
        &LANGUAGES
            .iter()
            .map(|name| LanguageRow {
                name_key: sql::names::fold(name),
                name: (*name).to_owned(),
                first_seen: 0,
            })
            .collect::<Vec<_>>(),
    )
    .await?;

    let mut rows = Vec::with_capacity(CHUNK_ROWS);
    let mut machine_index = 0;
    for user in &users {
        let user_machines: Vec<u64> = machines[machine_index..]
            .iter()
            .take_while(|m| m.user_id == user.user_id)
            .map(|m| m.machine_id)
            .collect();
        machine_index += user_machines.len();
        let offset = OFFSETS[rng.random_range(0..OFFSETS.len())];
        let favourites: Vec<&str> = (0..rng.random_range(1..=4))
            .map(|_| LANGUAGES[zipf.sample(&mut rng)])
            .collect();
        let diligence = rng.random_range(0.2..0.9);
        let today_local = (now + i64::from(offset) * 60) / 86400;
        for day_back in 0..i64::from(options.days) {
            let day = today_local - day_back;
            let weekday = (day + 3) % 7; // 0 = Monday
            let chance = if weekday < 5 {
                diligence
            } else {
                diligence / 3.0
            };
            if rng.random::<f64>() >= chance {
                continue;
            }
            let start = rng.random_range(7..12);
            let end = (start + rng.random_range(2..9)).min(23);
            for hour in start..end {
                if rng.random::<f64>() < 0.3 {
                    continue;
                }
                let local = day * 86400 + hour * 3600 + rng.random_range(0..3600);
                let coded_at = local - i64::from(offset) * 60;
                if coded_at > now {
                    continue;
                }
                let pulse_id = rng.random::<u64>();
                let machine_id = user_machines[rng.random_range(0..user_machines.len())];
                for language in favourites.iter().take(rng.random_range(1..=2)) {
                    let xp = rng.random_range(20..900);
                    report.xp += xp;
                    rows.push(PulseRow {
                        pulse_id,
                        batch_id: 0,
                        user_id: user.user_id,
                        machine_id,
                        coded_at: coded_at as u32,
                        utc_offset: offset,
                        language: (*language).to_owned(),
                        xp: xp as u32,
                        received_at: coded_at as u32,
                    });
                }
            }
        }
        if rows.len() >= CHUNK_ROWS {
            report.rows += rows.len();
            sql::blocks::insert_unshipped(db, &rows)
                .await
                .context("cannot insert pulses")?;
            rows.clear();
        }
    }
    if !rows.is_empty() {
        report.rows += rows.len();
        sql::blocks::insert_unshipped(db, &rows)
            .await
            .context("cannot insert pulses")?;
    }
    Ok(report)
}
