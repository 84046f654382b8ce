//! The buffers of the HTTP/1.1 relay, one pool per server (worker): a client
//! connection takes two (one per direction) for as long as it lives and
//! gives them back when it closes, so that a busy worker allocates none once
//! warm.
//!
//! `buffer_size` is each buffer's capacity (a request head may grow one up
//! to `max_header_size`; it shrinks back when given back). `min_buffers`
//! are allocated when the server starts; at most `max_buffers` idle ones are
//! kept, the others are freed when given back. Connections are never refused
//! for want of a buffer: beyond `max_buffers`, buffers are allocated and
//! freed per connection.

use std::cell::RefCell;

/// A pool of byte buffers of one capacity.
pub(crate) struct BufferPool {
    size: usize,
    max: usize,
    idle: RefCell<Vec<Vec<u8>>>,
}

impl BufferPool {
    /// A pool of buffers of `size` bytes, `min` of them allocated now, at
    /// most `max` kept idle.
    pub(crate) fn new(size: usize, min: usize, max: usize) -> Self {
        let max = max.max(min);
        let idle = (0..min).map(|_| Vec::with_capacity(size)).collect();
        BufferPool {
            size,
            max,
            idle: RefCell::new(idle),
        }
    }

    /// An empty buffer of at least `buffer_size` capacity.
    pub(crate) fn take(&self) -> Vec<u8> {
        self.idle
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.size))
    }

    /// Gives a buffer back, emptied (freed when `max_buffers` are idle).
    pub(crate) fn give(&self, mut buffer: Vec<u8>) {
        let mut idle = self.idle.borrow_mut();
        if idle.len() >= self.max {
            return;
        }
        buffer.clear();
        if buffer.capacity() > self.size {
            buffer.shrink_to(self.size);
        }
        idle.push(buffer);
    }

    /// Buffers idle in the pool.
    #[cfg(test)]
    pub(crate) fn idle(&self) -> usize {
        self.idle.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::BufferPool;

    #[test]
    fn buffers_are_reused_and_at_most_max_kept() {
        let pool = BufferPool::new(1024, 2, 3);
        assert_eq!(pool.idle(), 2);
        let taken: Vec<_> = (0..5).map(|_| pool.take()).collect();
        assert!(taken.iter().all(|b| b.capacity() >= 1024 && b.is_empty()));
        assert_eq!(pool.idle(), 0);
        for mut buffer in taken {
            buffer.extend_from_slice(b"data");
            pool.give(buffer);
        }
        assert_eq!(pool.idle(), 3);
        let again = pool.take();
        assert!(again.is_empty(), "a buffer comes back empty");
        // A buffer grown for a large head is shrunk back when kept.
        let mut grown = again;
        grown.reserve(64 * 1024);
        pool.give(grown);
        assert!(pool.take().capacity() < 64 * 1024);
    }
}
