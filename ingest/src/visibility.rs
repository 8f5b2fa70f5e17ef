//! Who may be shown: the public users, in memory.
//!
//! Every public output of ingest — the live feed and its replay ring, the
//! read API — asks this set at the moment it hands something out, never a
//! flag copied when a pulse arrived. It is reloaded from ClickHouse with the
//! tokens, every `tokens::TOKEN_REFRESH`, so a change made by another
//! process (the CLI) shows within that interval; a change made through this
//! process calls [`Visibility::hide`] and shows at once.

use sql::Db;
use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock, RwLockReadGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

#[derive(Default)]
struct Inner {
    /// user_id → username, public users only.
    public: HashMap<u64, Arc<str>>,
    /// Folded username → user_id, public users only.
    by_key: HashMap<String, u64>,
    /// Users hidden by this process, and when: a reload that started before
    /// then may not have seen the change yet, so it cannot show them again.
    hidden: HashMap<u64, Instant>,
}

#[derive(Default)]
pub struct Visibility {
    inner: RwLock<Inner>,
    /// Goes up whenever someone stops being public: what was checked at a
    /// generation still holds while the generation is the same.
    generation: AtomicU64,
}

impl Visibility {
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The current generation (see [`Visibility::is_public_since`]).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether `user_id`, found public at `generation`, is public now: one
    /// atomic load while nobody has been hidden since.
    pub fn is_public_since(&self, user_id: u64, generation: u64) -> bool {
        self.generation() == generation || self.is_public(user_id)
    }

    /// Whether `user_id` is a public user now.
    pub fn is_public(&self, user_id: u64) -> bool {
        self.read().public.contains_key(&user_id)
    }

    /// The public user called `name` (case-insensitively): id and username.
    pub fn public_user(&self, name: &str) -> Option<(u64, Arc<str>)> {
        let inner = self.read();
        let id = *inner.by_key.get(&sql::names::fold(name))?;
        Some((id, inner.public.get(&id)?.clone()))
    }

    /// Hides a user at once (made private or deleted by this process, after
    /// the change is written). Returns whether they were shown before.
    pub fn hide(&self, user_id: u64) -> bool {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.hidden.insert(user_id, Instant::now());
        inner.by_key.retain(|_, id| *id != user_id);
        self.generation.fetch_add(1, Ordering::AcqRel);
        inner.public.remove(&user_id).is_some()
    }

    /// Shows a user at once (made public by this process, after the change
    /// is written).
    pub fn show(&self, user_id: u64, username: &str) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.hidden.remove(&user_id);
        inner.by_key.insert(sql::names::fold(username), user_id);
        inner.public.insert(user_id, Arc::from(username));
    }

    /// Reloads the public users; returns the ids that were public and are
    /// not any more, for the live feed to forget.
    pub async fn refresh(&self, db: &Db) -> sql::Result<Vec<u64>> {
        let started = Instant::now();
        let users = sql::accounts::list_users(db).await?;
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        // Hidden by this process after this reload began: keep them hidden.
        inner.hidden.retain(|_, at| *at >= started);
        let mut public = HashMap::with_capacity(users.len());
        let mut by_key = HashMap::with_capacity(users.len());
        for user in users {
            if user.is_private() || inner.hidden.contains_key(&user.user_id) {
                continue;
            }
            by_key.insert(user.username_key.clone(), user.user_id);
            public.insert(user.user_id, Arc::from(user.username.as_str()));
        }
        let gone: Vec<u64> = inner
            .public
            .keys()
            .filter(|id| !public.contains_key(id))
            .copied()
            .collect();
        inner.public = public;
        inner.by_key = by_key;
        if !gone.is_empty() {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        Ok(gone)
    }
}
