//! A length prefix is a claim by the peer, not a permission to allocate: no
//! reader may allocate the declared size of a frame before checking it
//! against the limit, and none may allocate beyond the limit at all.
//!
//! This binary counts allocations with its own global allocator. Only the
//! allocations made by the current thread while it is "watched" are
//! recorded, so the test harness and proptest itself do not interfere.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Cursor;
use std::time::Duration;

use bytes::BytesMut;
use proptest::prelude::*;
use tokio_util::codec::Decoder;

use sozu_command::channel::{ChannelError, CommandServerCodec, INITIAL_CLIENT_BUFFER_SIZE};
use sozu_command::proto::command::{Request, Response};

struct LargestAllocation;

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn record(size: usize) {
    // `try_with`: the allocator also runs while thread-locals are torn down.
    let _ = WATCHING.try_with(|watching| {
        if watching.get() {
            LARGEST.with(|largest| largest.set(largest.get().max(size)));
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// only addition is bookkeeping in const-initialised thread-locals, which
// never allocates.
unsafe impl GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

/// The largest single allocation `work` made on this thread.
fn largest_allocation_in<T>(work: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|largest| largest.set(0));
    WATCHING.with(|watching| watching.set(true));
    let result = work();
    WATCHING.with(|watching| watching.set(false));
    (result, LARGEST.with(Cell::get))
}

const MAX: usize = 1 << 20;

/// A prefix declaring `declared` bytes, followed by a few payload bytes (the
/// rest of the declared frame never arrives).
fn claim(declared: u64) -> Vec<u8> {
    let mut input = declared.to_le_bytes().to_vec();
    input.extend_from_slice(&[0x12, 0x00, 0x1a]);
    input
}

fn channel_read(input: Vec<u8>) -> Result<Option<Response>, ChannelError> {
    let mut channel: Channel = Channel::new(Cursor::new(input)).with_max_frame_size(MAX);
    channel.read_message(Some(Duration::from_secs(5)))
}

type Channel = sozu_command::channel::Channel<Request, Response, Cursor<Vec<u8>>>;

fn codec_read(input: &[u8]) -> Result<Option<Result<Request, ChannelError>>, ChannelError> {
    let mut codec = CommandServerCodec::with_max_frame_size(MAX);
    let mut buffer = BytesMut::with_capacity(64);
    buffer.extend_from_slice(input);
    codec.decode(&mut buffer)
}

#[test]
fn the_watch_sees_allocations() {
    let (vector, largest) = largest_allocation_in(|| vec![0u8; 123_456]);
    assert_eq!(vector.len(), 123_456);
    assert!(largest >= 123_456);
}

#[test]
fn a_valid_claim_costs_at_most_the_limit() {
    // A frame just under the limit, of which only the start arrives: the
    // channel may grow for it, but never beyond the limit.
    let input = claim(MAX as u64);
    let (result, largest) = largest_allocation_in(|| channel_read(input));
    assert!(matches!(result, Err(ChannelError::Truncated { .. })));
    assert!(largest <= MAX, "allocated {largest} bytes");
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|cases| cases.parse().ok())
            .unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn an_oversized_claim_allocates_nothing_of_its_size(
        declared in prop_oneof![
            (MAX as u64 + 1)..(MAX as u64 * 4),
            any::<u64>().prop_filter("above the limit", |d| *d > MAX as u64),
        ],
    ) {
        let input = claim(declared);
        let (result, largest) = largest_allocation_in(|| channel_read(input.clone()));
        let refused = matches!(result, Err(ChannelError::FrameTooLarge { declared: d, .. }) if d == declared);
        prop_assert!(refused);
        // The initial client buffer is all the channel ever had.
        prop_assert!(largest <= INITIAL_CLIENT_BUFFER_SIZE, "channel allocated {}", largest);

        let (result, largest) = largest_allocation_in(|| codec_read(&input));
        let refused = matches!(result, Err(ChannelError::FrameTooLarge { .. }));
        prop_assert!(refused);
        prop_assert!(largest <= 64, "codec allocated {}", largest);
    }

    #[test]
    fn a_tiny_claim_allocates_nothing(declared in 0..8u64) {
        let input = claim(declared);
        let (result, largest) = largest_allocation_in(|| codec_read(&input));
        let refused = matches!(result, Err(ChannelError::FrameTooSmall { .. }));
        prop_assert!(refused);
        prop_assert!(largest <= 64, "codec allocated {}", largest);
    }

    /// Within the limit, what a reader reserves follows the declared length
    /// (so it can receive the frame) and nothing more than the limit.
    #[test]
    fn an_acceptable_claim_is_bounded_by_the_limit(declared in 8..=(MAX as u64)) {
        let input = claim(declared);
        let (_, largest) = largest_allocation_in(|| channel_read(input.clone()));
        prop_assert!(largest <= MAX.max(INITIAL_CLIENT_BUFFER_SIZE), "channel allocated {}", largest);
        let (_, largest) = largest_allocation_in(|| codec_read(&input));
        // BytesMut grows like a Vec: up to twice what was asked.
        prop_assert!(largest <= 2 * MAX, "codec allocated {}", largest);
    }
}
