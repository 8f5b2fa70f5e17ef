//! The ids of the heartbeats logged most recently, so a copy sent again
//! (a client that lost the answer and retries) is answered without being
//! logged twice. Bounded: the oldest ids are forgotten first; a copy that
//! comes later still meets its original in ClickHouse's merges.

use std::{
    collections::{HashSet, VecDeque},
    sync::Mutex,
};

pub struct Recent {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    ids: HashSet<u64>,
    order: VecDeque<u64>,
}

impl Recent {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::default(),
        }
    }

    pub fn contains(&self, id: u64) -> bool {
        self.lock().ids.contains(&id)
    }

    /// Remembers ids that are now logged (never before: a copy of a
    /// heartbeat whose append failed must still be taken).
    pub fn remember(&self, ids: impl IntoIterator<Item = u64>) {
        let mut inner = self.lock();
        for id in ids {
            if inner.ids.insert(id) {
                inner.order.push_back(id);
            }
            while inner.order.len() > self.capacity {
                if let Some(old) = inner.order.pop_front() {
                    inner.ids.remove(&old);
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgets_the_oldest_first() {
        let recent = Recent::new(2);
        recent.remember([1, 2, 2]);
        assert!(recent.contains(1) && recent.contains(2));
        recent.remember([3]);
        assert!(!recent.contains(1) && recent.contains(2) && recent.contains(3));
    }
}
