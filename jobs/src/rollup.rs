//! One rollup run: which users changed, their aggregates from ClickHouse,
//! the models (Polars, in `compute`), and the site (`builder`).

use crate::coding;
use crate::compute::{self, ProfileInputs, SharedInputs, UserInfo};
use crate::leaderboards::{self, PeriodStarts};
use ::builder::{BuildReport, Builder, model::SiteModel};
use anyhow::Context;
use sql::{
    Db, accounts,
    languages::Aliases,
    rollups::{UserLanguagePeriods, UserLanguageXp, Users},
};
use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// Without an insertion watermark ([`Rollups::with_watermark`]), pulses
/// received this long before the previous run started are looked at again:
/// a block formed just before it may land just after.
pub const RECEIVED_OVERLAP_SECS: u32 = 10;

/// The insertion watermark: every pulse whose `received_at` is below it is
/// in ClickHouse already (or never will be). Ingest's shipper gives it.
pub type Watermark = Arc<dyn Fn() -> u32 + Send + Sync>;

/// What a run covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every public user; rebuilds the whole site.
    Full,
    /// Users with new pulses or changed accounts since the last run.
    Incremental,
    /// These users (by name), and the shared pages.
    Users(Vec<String>),
}

#[derive(Debug, Default)]
pub struct RunReport {
    /// Not run: another node holds the builder lease.
    pub skipped: bool,
    pub full: bool,
    /// Profiles computed.
    pub profiles: usize,
    /// Users whose pages were removed (now private or deleted).
    pub removed: usize,
    pub build: BuildReport,
    /// Time per step.
    pub steps: Vec<(&'static str, Duration)>,
}

impl RunReport {
    pub fn total(&self) -> Duration {
        self.steps.iter().map(|(_, d)| *d).sum()
    }
}

#[derive(Default)]
struct State {
    /// When the last run started (unix seconds); `None` before the first.
    last_started: Option<u32>,
    /// Pulses received before this were read by the last run.
    received_until: u32,
    /// Public users at the last run: id → username.
    public: HashMap<u64, String>,
    /// Public users' coding time per language, for the language pages.
    coding: coding::Totals,
    /// The builder lease's tenure of the last run.
    tenure: Option<u64>,
}

/// The rollup jobs over one store and one output directory. Runs never
/// overlap: a run waits for (or, scheduled, skips) one in progress.
pub struct Rollups {
    db: Db,
    builder: Arc<Builder>,
    state: tokio::sync::Mutex<State>,
    /// Users ingest saw pulses from since the last run.
    dirty: Mutex<HashSet<u64>>,
    watermark: Option<Watermark>,
    /// Gaps between heartbeats up to this are coding time.
    keystroke_timeout: Duration,
    /// Where the last successful runs are noted (`status::STATUS_FILE`).
    status_file: Option<std::path::PathBuf>,
    /// Several nodes share the store: runs only while this node holds the
    /// builder lease.
    lease: Option<crate::lease::Lease>,
}

struct Timer {
    started: Instant,
    steps: Vec<(&'static str, Duration)>,
}

impl Timer {
    fn step(&mut self, name: &'static str) {
        let elapsed = self.started.elapsed();
        tracing::debug!(step = name, ms = elapsed.as_millis() as u64, "rollup step");
        self.steps.push((name, elapsed));
        self.started = Instant::now();
    }
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Rollups {
    pub fn new(db: Db, builder: Builder) -> Self {
        Self {
            db,
            builder: Arc::new(builder),
            state: tokio::sync::Mutex::new(State::default()),
            dirty: Mutex::new(HashSet::new()),
            watermark: None,
            keystroke_timeout: sql::coding::DEFAULT_KEYSTROKE_TIMEOUT,
            status_file: None,
            lease: None,
        }
    }

    /// Runs only while `lease` is held; the first run of each tenure is a
    /// full one (another node may have built in between).
    pub fn with_lease(mut self, lease: crate::lease::Lease) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Notes every successful run in `path` (see [`crate::status`]).
    pub fn with_status_file(mut self, path: std::path::PathBuf) -> Self {
        self.status_file = Some(path);
        self
    }

    /// Coding time counts gaps between heartbeats up to `timeout`
    /// (`CODESTATS_KEYSTROKE_TIMEOUT_SECS`).
    pub fn with_keystroke_timeout(mut self, timeout: Duration) -> Self {
        self.keystroke_timeout = timeout;
        self
    }

    /// Incremental runs read pulses by `received_at` up to `watermark`, and
    /// from exactly where the last run stopped: none is missed however late
    /// it lands.
    pub fn with_watermark(mut self, watermark: Watermark) -> Self {
        self.watermark = Some(watermark);
        self
    }

    /// Where this run stops reading `received_at`, and where it starts.
    fn received_window(&self, state: &State) -> (u32, u32) {
        match &self.watermark {
            Some(watermark) => (state.received_until, watermark()),
            None => (
                state.received_until.saturating_sub(RECEIVED_OVERLAP_SECS),
                u32::MAX,
            ),
        }
    }

    pub fn builder(&self) -> &Builder {
        &self.builder
    }

    /// Notes that `user_id` sent pulses (ingest, in this process).
    pub fn mark_dirty(&self, user_id: u64) {
        self.dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(user_id);
    }

    /// Runs unless a run is in progress (then `None`).
    pub async fn try_run(&self, scope: Scope) -> Option<anyhow::Result<RunReport>> {
        let mut state = self.state.try_lock().ok()?;
        Some(self.run_reported(&mut state, scope).await)
    }

    /// Runs, after the run in progress if any.
    pub async fn run(&self, scope: Scope) -> anyhow::Result<RunReport> {
        let mut state = self.state.lock().await;
        self.run_reported(&mut state, scope).await
    }

    /// One run, reported to the metrics and the status file.
    async fn run_reported(&self, state: &mut State, mut scope: Scope) -> anyhow::Result<RunReport> {
        if let Some(lease) = &self.lease {
            let Some(tenure) = lease.tenure() else {
                tracing::debug!("rollup skipped: another node holds the builder lease");
                return Ok(RunReport {
                    skipped: true,
                    ..RunReport::default()
                });
            };
            if state.tenure != Some(tenure) {
                scope = Scope::Full;
            }
        }
        let tenure = self.lease.as_ref().and_then(|l| l.tenure());
        let asked_full = matches!(scope, Scope::Full);
        let started = Instant::now();
        let result = self.run_locked(state, scope).await;
        if result.is_ok() {
            state.tenure = tenure;
        }
        let full = result.as_ref().map_or(asked_full, |r| r.full);
        let (file, took, ok) = (self.status_file.clone(), started.elapsed(), result.is_ok());
        // The status file is fsync'd: off the runtime's threads.
        let noted = tokio::task::spawn_blocking(move || {
            crate::status::record(file.as_ref(), full, took, ok)
        });
        if let Err(e) = noted.await {
            tracing::warn!(error = %e, "noting the rollup's status panicked");
        }
        result
    }

    #[tracing::instrument(name = "rollup", skip_all, fields(scope = ?scope))]
    async fn run_locked(&self, state: &mut State, scope: Scope) -> anyhow::Result<RunReport> {
        let started = now_secs();
        // Taken before anything is read: every pulse received before
        // `until` is in ClickHouse by now.
        let (since, until) = self.received_window(state);
        let mut timer = Timer {
            started: Instant::now(),
            steps: vec![],
        };
        let users = accounts::list_users(&self.db)
            .await
            .context("cannot list users")?;
        // Read once per run: every number of a run uses the same names.
        let aliases = Aliases::load(&self.db)
            .await
            .context("cannot read the language aliases")?;
        let public: Vec<UserInfo> = users
            .iter()
            .filter(|u| !u.is_private())
            .map(|u| UserInfo {
                user_id: u.user_id,
                username: u.username.clone(),
                created_at: u.created_at,
            })
            .collect();
        let public_names: HashMap<u64, String> = public
            .iter()
            .map(|u| (u.user_id, u.username.clone()))
            .collect();
        let site_exists = self.builder.output_dir().join("index.html").is_file();
        let scope = match scope {
            Scope::Incremental if state.last_started.is_none() || !site_exists => Scope::Full,
            Scope::Users(_) if !site_exists => Scope::Full,
            other => other,
        };

        // Whose profile to compute, and whose pages to rewrite or remove.
        let marked: HashSet<u64> =
            std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|e| e.into_inner()));
        let (targets, touched): (Vec<u64>, Vec<String>) = match &scope {
            Scope::Full => (public.iter().map(|u| u.user_id).collect(), vec![]),
            Scope::Users(names) => {
                let wanted: HashSet<String> = names.iter().map(|n| sql::names::fold(n)).collect();
                let found: Vec<&sql::accounts::User> = users
                    .iter()
                    .filter(|u| wanted.contains(&u.username_key))
                    .collect();
                if found.len() < wanted.len() {
                    let known: HashSet<&str> =
                        found.iter().map(|u| u.username_key.as_str()).collect();
                    let missing: Vec<&String> = wanted
                        .iter()
                        .filter(|w| !known.contains(w.as_str()))
                        .collect();
                    anyhow::bail!("no such user: {missing:?}");
                }
                (
                    found
                        .iter()
                        .filter(|u| !u.is_private())
                        .map(|u| u.user_id)
                        .collect(),
                    found.iter().map(|u| u.username.clone()).collect(),
                )
            }
            Scope::Incremental => {
                let mut ids: HashSet<u64> = sql::rollups::users_received(&self.db, since, until)
                    .await
                    .context("cannot read which users changed")?
                    .into_iter()
                    .collect();
                ids.extend(marked);
                let mut touched = Vec::new();
                // Users gone private, deleted or renamed lose their old pages.
                for (id, old_name) in &state.public {
                    if public_names.get(id) != Some(old_name) {
                        touched.push(old_name.clone());
                        ids.insert(*id);
                    }
                }
                // Users new to the public site.
                for id in public_names.keys() {
                    if !state.public.contains_key(id) {
                        ids.insert(*id);
                    }
                }
                let targets: Vec<u64> = ids
                    .into_iter()
                    .filter(|id| public_names.contains_key(id))
                    .collect();
                touched.extend(
                    targets
                        .iter()
                        .filter_map(|id| public_names.get(id).cloned()),
                );
                (targets, touched)
            }
        };
        timer.step("dirty users");

        let selection = match scope {
            Scope::Full => Users::All,
            _ => Users::Only(&targets),
        };
        let now = now_secs();
        let inputs = self.profile_inputs(&aliases, &selection, now).await?;
        let mut coding_rows =
            sql::coding::durations(&self.db, &selection, 0, u16::MAX, self.keystroke_timeout)
                .await
                .context("cannot read coding time")?;
        for row in &mut coding_rows {
            aliases.show(&mut row.language);
        }
        timer.step("read profile aggregates");
        let starts = PeriodStarts::of(compute::local_today(now, 0));
        let (shared_inputs, periods, left) = self.shared_inputs(&aliases, now, starts).await?;
        timer.step("read shared aggregates");

        let target_set: HashSet<u64> = targets.iter().copied().collect();
        let target_users: Vec<UserInfo> = public
            .iter()
            .filter(|u| target_set.contains(&u.user_id))
            .cloned()
            .collect();
        let full = scope == Scope::Full;
        let mut coding_of = coding::per_user(&coding_rows);
        drop(coding_rows);
        coding_of.retain(|id, _| target_set.contains(id));
        if full {
            state.coding = coding::Totals::default();
        }
        state
            .coding
            .update(targets.iter().map(|id| (*id, coding_of.get(id))));
        state.coding.retain(|id| public_names.contains_key(&id));
        let language_seconds: HashMap<String, u64> = state
            .coding
            .per_language()
            .into_iter()
            .map(|(name, seconds)| (name.to_owned(), seconds))
            .collect();
        let all_names = public_names.clone();
        let ids_by_name: HashMap<String, u64> = target_users
            .iter()
            .map(|u| (u.username.clone(), u.user_id))
            .collect();
        let (site, profiles) =
            tokio::task::spawn_blocking(move || -> anyhow::Result<(SiteModel, usize)> {
                let mut profiles =
                    compute::profiles(&target_users, &inputs, now).context("profiles")?;
                for p in &mut profiles {
                    if let Some(c) = ids_by_name
                        .get(&p.username)
                        .and_then(|id| coding_of.remove(id))
                    {
                        p.coding = c;
                    }
                }
                let (front, mut languages) =
                    compute::shared(&public, &shared_inputs).context("shared pages")?;
                for l in &mut languages {
                    l.coding_seconds = language_seconds.get(&l.name).copied().unwrap_or(0);
                }
                let boards = leaderboards::boards(&all_names, &left, &periods, starts);
                let n = profiles.len();
                Ok((
                    SiteModel {
                        generated_at: now,
                        front,
                        profiles,
                        languages,
                        leaderboards: boards,
                    },
                    n,
                ))
            })
            .await??;
        timer.step("compute models");

        let builder = self.builder.clone();
        let removed = touched
            .iter()
            .filter(|n| !site.profiles.iter().any(|p| &p.username == *n))
            .count();
        let rendering = Instant::now();
        let build = tokio::task::spawn_blocking(move || {
            if full {
                builder.build(&site)
            } else {
                builder.build_users(&site, &touched)
            }
        })
        .await?
        .context("cannot build the site")?;
        metrics::histogram!(crate::status::BUILD_DURATION, "kind" => if full { "full" } else { "users" })
            .record(rendering.elapsed().as_secs_f64());
        timer.step("render site");

        state.last_started = Some(started as u32);
        state.received_until = if until == u32::MAX {
            started as u32
        } else {
            until
        };
        state.public = public_names;
        let report = RunReport {
            skipped: false,
            full,
            profiles,
            removed,
            build,
            steps: timer.steps,
        };
        let steps: Vec<String> = report
            .steps
            .iter()
            .map(|(name, took)| format!("{name} {} ms", took.as_millis()))
            .collect();
        tracing::info!(
            full,
            profiles,
            removed,
            files = report.build.files(),
            ms = report.total().as_millis() as u64,
            steps = %steps.join(", "),
            "rollup done"
        );
        Ok(report)
    }

    async fn profile_inputs(
        &self,
        aliases: &Aliases,
        users: &Users<'_>,
        now: i64,
    ) -> anyhow::Result<ProfileInputs> {
        let db = &self.db;
        let since = (now - compute::NEW_XP_WINDOW_SECS).max(0) as u32;
        let (language_days, machines, hours, recent, last, machine_names) = tokio::try_join!(
            sql::rollups::language_days(db, aliases, users),
            sql::rollups::machines(db, users),
            sql::rollups::hours(db, users),
            sql::rollups::recent(db, aliases, users, since),
            sql::rollups::last_pulses(db, users),
            accounts::machine_names(db),
        )
        .context("cannot read profile aggregates")?;
        Ok(ProfileInputs {
            language_days,
            machines,
            machine_names: machine_names.into_iter().collect(),
            hours,
            recent,
            last,
        })
    }

    /// What the front page, the language pages and the leaderboards read:
    /// the shared inputs, every public user's XP per language and period,
    /// and who left the leaderboards.
    async fn shared_inputs(
        &self,
        aliases: &Aliases,
        now: i64,
        starts: PeriodStarts,
    ) -> anyhow::Result<(SharedInputs, Vec<UserLanguagePeriods>, HashSet<u64>)> {
        let db = &self.db;
        let day = |d: chrono::NaiveDate| d.format("%Y-%m-%d").to_string();
        let week_start = day(compute::local_today(now, 0)
            - chrono::Duration::days(i64::from(compute::WEEK_DAYS - 1)));
        let (year, month, week) = (day(starts.year), day(starts.month), day(starts.week));
        let minute_since = (now - compute::XP_PER_MINUTE_WINDOW_SECS).max(0) as u32;
        let (periods, user_languages_week, language_days, xp_per_minute, left) = tokio::try_join!(
            sql::rollups::public_user_language_periods(db, aliases, [&year, &month, &week]),
            sql::rollups::public_user_languages(db, aliases, &week_start),
            sql::rollups::public_language_days(db, aliases),
            sql::rollups::public_xp_per_minute(db, minute_since),
            accounts::preferences::off_leaderboards(db),
        )
        .context("cannot read shared aggregates")?;
        let user_languages = periods
            .iter()
            .map(|r| UserLanguageXp {
                user_id: r.user_id,
                language: r.language.clone(),
                xp: r.xp_all,
            })
            .collect();
        let inputs = SharedInputs {
            user_languages,
            user_languages_week,
            language_days,
            xp_per_minute,
        };
        Ok((inputs, periods, left.into_iter().collect()))
    }
}
