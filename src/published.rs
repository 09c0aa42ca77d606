//! A value that a reload replaces while other threads keep using it: the ruleset the live
//! workers take, the response policy the workers decide with. Readers pay one atomic load per
//! look and take the lock only after a replacement.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug)]
pub struct Published<T> {
    /// Bumped after each replacement, so readers notice without locking.
    generation: AtomicU64,
    current: Mutex<Arc<T>>,
}

impl<T> Published<T> {
    pub fn new(value: T) -> Arc<Published<T>> {
        Arc::new(Published {
            generation: AtomicU64::new(0),
            current: Mutex::new(Arc::new(value)),
        })
    }

    /// Readers see `value` at their next look.
    pub fn replace(&self, value: T) {
        // A poisoned lock only means a reader panicked while cloning the Arc; the value is whole.
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        *current = Arc::new(value);
        drop(current);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub fn load(&self) -> Arc<T> {
        Arc::clone(&self.current.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A reader that starts from the value published now.
    pub fn reader(self: &Arc<Self>) -> Reader<T> {
        let seen = self.generation.load(Ordering::Acquire);
        Reader {
            value: self.load(),
            shared: Arc::clone(self),
            seen,
        }
    }
}

/// One thread's copy of a [`Published`] value.
#[derive(Debug)]
pub struct Reader<T> {
    shared: Arc<Published<T>>,
    seen: u64,
    value: Arc<T>,
}

impl<T> Reader<T> {
    /// The newest value.
    pub fn current(&mut self) -> &Arc<T> {
        self.refresh();
        &self.value
    }

    /// The newest value if it was replaced since the last look, else `None`.
    pub fn changed(&mut self) -> Option<&Arc<T>> {
        self.refresh().then_some(&self.value)
    }

    fn refresh(&mut self) -> bool {
        let generation = self.shared.generation.load(Ordering::Acquire);
        if generation == self.seen {
            return false;
        }
        self.seen = generation;
        self.value = self.shared.load();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_see_a_replacement_once() {
        let published = Published::new(1);
        let mut reader = published.reader();
        assert_eq!(**reader.current(), 1);
        assert!(reader.changed().is_none());
        published.replace(2);
        let mut late = published.reader();
        assert_eq!(reader.changed().map(|v| **v), Some(2));
        assert!(reader.changed().is_none());
        assert_eq!(**reader.current(), 2);
        assert!(
            late.changed().is_none(),
            "a reader starts from what is published"
        );
        assert_eq!(*published.load(), 2);
    }
}
