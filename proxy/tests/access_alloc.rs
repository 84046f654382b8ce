//! Writing a request's access record directly allocates nothing once the
//! thread's buffers have grown, in every format: a counting global
//! allocator sees no allocation while a thousand records are written
//! through a direct layer behind an `EnvFilter`, as the daemon sets it up.
//! Only the test's own thread is counted: the test harness's threads may
//! allocate meanwhile (they did, on a loaded machine).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sozu_proxy::access_log::{
    AccessLogFormat, AccessLogLayer, AccessLogWriter, Elapsed, Entry, log_request,
};
use tracing_subscriber::prelude::*;

/// Counts every allocation and reallocation of each thread.
struct Counting;

thread_local! {
    /// This thread's count (a constant initializer: reading it allocates
    /// nothing).
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    // Not counted while the thread's locals are being torn down.
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
}

fn allocations_so_far() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Counts the records written, and the bytes, without allocating.
#[derive(Default)]
struct Counted {
    records: AtomicU64,
    bytes: AtomicU64,
}

impl AccessLogWriter for Counted {
    fn write_text(&self, record: &[u8]) {
        self.records.fetch_add(1, Ordering::SeqCst);
        self.bytes.fetch_add(record.len() as u64, Ordering::SeqCst);
    }
    fn write_binary(&self, record: &[u8]) {
        self.write_text(record);
    }
}

/// A request record as the relay makes it, with text that needs escaping.
fn entry() -> Entry<'static> {
    Entry {
        request_id: Some("01ARZ3NDEKTSV4RRFFQ69G5FAV"),
        client: Some("127.0.0.1:41234"),
        cluster: Some("app"),
        backend: Some("app-0"),
        backend_address: Some("127.0.0.1:8080"),
        method: Some("GET"),
        host: Some("app.test"),
        path: Some("/a\u{1b}[31m?q=\"1\""),
        protocol: Some("http"),
        user_agent: Some("curl/8.0"),
        status: Some(200),
        bytes_in: Some(0),
        bytes_out: Some(5),
        service: Elapsed::Measured(Duration::from_micros(87)),
        response: Elapsed::Unmeasured,
        connect: Elapsed::Measured(Duration::from_micros(12)),
        ..Entry::default()
    }
}

/// The allocations while `count` records are written in `format`, after a
/// warm-up, and the records written meanwhile.
fn allocations(format: AccessLogFormat, count: u64) -> (u64, u64) {
    let counted = Arc::new(Counted::default());
    let layer = AccessLogLayer::new(format, counted.clone(), "worker-0").direct();
    let filter = tracing_subscriber::EnvFilter::new("warn,access=info");
    let subscriber = tracing_subscriber::registry().with(filter).with(layer);
    let entry = entry();
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..10 {
            log_request(&entry);
        }
        let (before, written) = (allocations_so_far(), counted.records.load(Ordering::SeqCst));
        for _ in 0..count {
            log_request(&entry);
        }
        (
            allocations_so_far() - before,
            counted.records.load(Ordering::SeqCst) - written,
        )
    })
}

#[test]
fn direct_records_allocate_nothing() {
    // The count sees an allocation when there is one.
    let before = allocations_so_far();
    std::hint::black_box(String::from("counted"));
    assert!(allocations_so_far() > before);
    for format in [
        AccessLogFormat::Ascii,
        AccessLogFormat::Json,
        AccessLogFormat::Protobuf,
    ] {
        let (allocations, records) = allocations(format, 1000);
        assert_eq!(records, 1000, "{format:?}");
        assert_eq!(allocations, 0, "{format:?}: {allocations} allocations");
    }
}
