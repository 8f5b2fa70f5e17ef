//! [`Builder`]: full builds (staged, then swapped in) and incremental
//! builds of a few users plus the shared pages.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use crate::embed::{self, EmbedView};
use crate::leaderboards::{self, Boards};
use crate::model::{ProfileModel, SiteModel};
use crate::render::Renderer;
use crate::view::{
    self, FrontView, LanguageView, LanguagesView, NotFoundView, ProfileView, SiteView,
};
use crate::write::{self, Kind, SiteLock, Writer};
use crate::{Error, charts, json, paths, year};

/// Default site name shown in titles.
pub const DEFAULT_SITE_NAME: &str = "codestats";
/// Default base URL shown in plugin setup instructions.
pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

/// What a build did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildReport {
    /// `true` for a full build (also when an incremental build found no
    /// site yet and built everything).
    pub full: bool,
    /// HTML pages written.
    pub pages: usize,
    /// SVG charts written.
    pub charts: usize,
    /// JSON documents written.
    pub json: usize,
    /// Static assets written.
    pub assets: usize,
    /// Files or folders removed (users or languages no longer present).
    pub removed: usize,
    /// Profiles rendered.
    pub users: usize,
    /// Language pages rendered.
    pub languages: usize,
}

impl BuildReport {
    /// All files written.
    pub fn files(&self) -> usize {
        self.pages + self.charts + self.json + self.assets
    }
}

/// Refuses a model where one page would replace another: usernames must be
/// unique case-insensitively (their JSON is keyed by the lower-cased name),
/// language names exactly, leaderboards by period and language.
fn check_unique(site: &SiteModel) -> Result<(), Error> {
    let mut users = HashSet::new();
    for p in &site.profiles {
        if !users.insert(p.username.to_lowercase()) {
            return Err(Error::Duplicate {
                kind: "username",
                name: p.username.clone(),
            });
        }
    }
    let mut languages = HashSet::new();
    for l in &site.languages {
        if !languages.insert(l.name.as_str()) {
            return Err(Error::Duplicate {
                kind: "language",
                name: l.name.clone(),
            });
        }
    }
    leaderboards::check_unique(&site.leaderboards)
}

/// Renders [`SiteModel`]s into one output directory.
///
/// Builds of one output directory take turns, in this process or across
/// processes: each holds an OS lock on a file beside the directory for its
/// duration, and a build that finds it held waits.
pub struct Builder {
    output_dir: PathBuf,
    renderer: Renderer,
    site_name: String,
    public_url: String,
    lock: Mutex<()>,
}

impl Builder {
    /// A builder writing to `output_dir` (created by the first build) with
    /// the embedded templates.
    pub fn new(output_dir: impl Into<PathBuf>) -> Result<Self, Error> {
        Ok(Self {
            output_dir: output_dir.into(),
            renderer: Renderer::new(None)?,
            site_name: DEFAULT_SITE_NAME.to_owned(),
            public_url: DEFAULT_PUBLIC_URL.to_owned(),
            lock: Mutex::new(()),
        })
    }

    /// A theme: `dir/templates/*.html` replace embedded templates of the
    /// same name (or add to them), `dir/site/*` the static assets.
    pub fn with_theme_dir(mut self, dir: impl AsRef<Path>) -> Result<Self, Error> {
        self.renderer = Renderer::new(Some(dir.as_ref()))?;
        Ok(self)
    }

    /// The base URL plugins should send pulses to, shown to users without XP.
    pub fn with_public_url(mut self, url: impl Into<String>) -> Self {
        self.public_url = url.into();
        self
    }

    /// The site's name, shown in page titles.
    pub fn with_site_name(mut self, name: impl Into<String>) -> Self {
        self.site_name = name.into();
        self
    }

    pub fn output_dir(&self) -> &Path {
        &self.output_dir
    }

    /// Renders everything into a fresh staging directory beside the output
    /// directory, then swaps it in: pages of users no longer in `site` are
    /// gone, and readers never see a half-built site.
    #[tracing::instrument(skip_all, fields(dir = %self.output_dir.display()))]
    pub fn build(&self, site: &SiteModel) -> Result<BuildReport, Error> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let _site = SiteLock::acquire(&self.output_dir)?;
        self.build_locked(site)
    }

    /// A full build; the caller holds the [`SiteLock`].
    fn build_locked(&self, site: &SiteModel) -> Result<BuildReport, Error> {
        check_unique(site)?;
        let started = Instant::now();
        write::remove_stale_staging(&self.output_dir);
        let staging = write::staging_dir(&self.output_dir)?;
        let mut report = BuildReport {
            full: true,
            ..BuildReport::default()
        };
        let result = (|| {
            let mut w = Writer::new(&staging, &mut report);
            self.write_assets(&mut w)?;
            for profile in &site.profiles {
                self.write_profile(&mut w, site, profile)?;
            }
            self.write_shared(&mut w, site)
        })();
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        report.users = site.profiles.len();
        report.languages = site.languages.len();
        if let Err(e) = write::publish(&staging, &self.output_dir) {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        tracing::info!(
            users = report.users,
            files = report.files(),
            ms = started.elapsed().as_millis() as u64,
            "site built"
        );
        Ok(report)
    }

    /// Rewrites the pages and JSON of the `dirty` users, and the shared
    /// pages (front page, language pages, leaderboards, 404, assets), in
    /// place, one file at a time (each atomically); language pages and
    /// language boards no longer in `site` are removed. A dirty user
    /// missing from `site` (deleted, or now private) has their pages and
    /// JSON removed. Without a built site yet, this is a full
    /// [`build`](Self::build).
    #[tracing::instrument(skip_all, fields(dir = %self.output_dir.display(), dirty = dirty.len()))]
    pub fn build_users(
        &self,
        site: &SiteModel,
        dirty: &[impl AsRef<str>],
    ) -> Result<BuildReport, Error> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let _site = SiteLock::acquire(&self.output_dir)?;
        if !self.output_dir.join("index.html").is_file() {
            return self.build_locked(site);
        }
        check_unique(site)?;
        let started = Instant::now();
        let mut report = BuildReport::default();
        let mut w = Writer::new(&self.output_dir, &mut report);
        let mut done = HashSet::new();
        for name in dirty {
            let name = name.as_ref();
            if !done.insert(name) {
                continue;
            }
            match site.profiles.iter().find(|p| p.username == name) {
                Some(profile) => self.write_profile(&mut w, site, profile)?,
                None => {
                    tracing::info!(user = %name, "removing pages of a user no longer public");
                    w.remove(&paths::user_dir(name))?;
                    w.remove(&paths::api_user_file(name))?;
                    w.remove(&paths::api_coding_file(name))?;
                }
            }
        }
        self.write_assets(&mut w)?;
        self.write_shared(&mut w, site)?;
        self.remove_gone_languages(&mut w, site)?;
        leaderboards::remove_gone(&mut w, &site.leaderboards)?;
        report.users = site
            .profiles
            .iter()
            .filter(|p| done.contains(p.username.as_str()))
            .count();
        report.languages = site.languages.len();
        tracing::info!(
            users = report.users,
            files = report.files(),
            removed = report.removed,
            ms = started.elapsed().as_millis() as u64,
            "users rebuilt"
        );
        Ok(report)
    }

    /// Removes one user's pages and JSON now (they went private or were
    /// deleted); the shared pages follow at the next rollup. Nothing to do
    /// when the user has no pages.
    pub fn remove_user(&self, username: &str) -> Result<BuildReport, Error> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let _site = SiteLock::acquire(&self.output_dir)?;
        let mut report = BuildReport::default();
        if self.output_dir.is_dir() {
            let mut w = Writer::new(&self.output_dir, &mut report);
            w.remove(&paths::user_dir(username))?;
            w.remove(&paths::api_user_file(username))?;
            w.remove(&paths::api_coding_file(username))?;
        }
        tracing::info!(user = %username, removed = report.removed, "pages of a user removed");
        Ok(report)
    }

    fn site_view(&self, site: &SiteModel) -> SiteView {
        SiteView::new(&self.site_name, &self.public_url, site)
    }

    fn write_assets(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        for (name, bytes) in &self.renderer.assets {
            w.write_content(&Path::new(paths::STATIC_DIR).join(name), bytes, Kind::Asset)?;
        }
        Ok(())
    }

    fn write_profile(
        &self,
        w: &mut Writer<'_>,
        site: &SiteModel,
        p: &ProfileModel,
    ) -> Result<(), Error> {
        let dir = paths::user_dir(&p.username);
        let grid = year::inline_svg(p.today, &p.daily);
        let site_view = self.site_view(site);
        let snippets = EmbedView::new(&site_view.public_url, &self.site_name, p);
        let page = self.renderer.render(
            "profile.html",
            &ProfileView::new(site_view, p, grid, snippets),
        )?;
        w.write_content(&dir.join("index.html"), page.as_bytes(), Kind::Page)?;
        if p.total_xp > 0 {
            let svg = charts::hours(&p.username, &p.hours)?;
            w.write_content(&dir.join(view::HOURS_SVG), svg.as_bytes(), Kind::Chart)?;
            let svg = charts::weekdays(&p.username, &p.weekdays)?;
            w.write_content(&dir.join(view::WEEKDAYS_SVG), svg.as_bytes(), Kind::Chart)?;
            let svg = charts::last_14_days(&p.username, &p.last_14_days)?;
            w.write_content(&dir.join(view::DAYS14_SVG), svg.as_bytes(), Kind::Chart)?;
        }
        embed::write(w, &self.site_name, p)?;
        let doc = json::user_json(p)?;
        w.write_content(
            &paths::api_user_file(&p.username),
            doc.as_bytes(),
            Kind::Json,
        )?;
        let doc = json::coding_json(p)?;
        w.write_content(
            &paths::api_coding_file(&p.username),
            doc.as_bytes(),
            Kind::Json,
        )?;
        Ok(())
    }

    /// Front page, language pages, the language list, the leaderboards and
    /// the 404 page.
    fn write_shared(&self, w: &mut Writer<'_>, site: &SiteModel) -> Result<(), Error> {
        let boards = Boards::new(&site.leaderboards);
        let page = self.renderer.render(
            "index.html",
            &FrontView::new(self.site_view(site), &site.front),
        )?;
        w.write_content(Path::new("index.html"), page.as_bytes(), Kind::Page)?;
        let svg = charts::xp_per_minute(site.generated_at, &site.front.xp_per_minute)?;
        w.write_content(
            Path::new(view::FRONT_CHART_URL.trim_start_matches('/')),
            svg.as_bytes(),
            Kind::Chart,
        )?;
        let page = self.renderer.render(
            "languages.html",
            &LanguagesView::new(self.site_view(site), &site.languages),
        )?;
        w.write_content(
            &Path::new(paths::LANGUAGES_DIR).join("index.html"),
            page.as_bytes(),
            Kind::Page,
        )?;
        for language in &site.languages {
            let dir = paths::language_dir(&language.name);
            let page = self.renderer.render(
                "language.html",
                &LanguageView::new(
                    self.site_view(site),
                    language,
                    &boards.periods_of(Some(&language.name)),
                ),
            )?;
            w.write_content(&dir.join("index.html"), page.as_bytes(), Kind::Page)?;
            let svg = charts::xp_per_day(
                &format!("Public XP per day in {}", language.name),
                &language.xp_per_day,
            )?;
            w.write_content(&dir.join(view::LANGUAGE_SVG), svg.as_bytes(), Kind::Chart)?;
        }
        leaderboards::write(
            w,
            &self.renderer,
            &self.site_view(site),
            &boards,
            &site.languages,
        )?;
        let page = self.renderer.render(
            "404.html",
            &NotFoundView {
                site: self.site_view(site),
            },
        )?;
        w.write_content(Path::new("404.html"), page.as_bytes(), Kind::Page)?;
        Ok(())
    }

    /// Incremental builds: drops language folders no longer in the model.
    fn remove_gone_languages(&self, w: &mut Writer<'_>, site: &SiteModel) -> Result<(), Error> {
        let keep: HashSet<String> = site
            .languages
            .iter()
            .map(|l| paths::segment(&l.name))
            .collect();
        w.remove_dirs_except(Path::new(paths::LANGUAGES_DIR), &keep)
    }
}
