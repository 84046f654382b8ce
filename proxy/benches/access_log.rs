//! One relay access record, ascii, into a writer that discards it: through
//! a `tracing` event read back field by field (the path embedders' layers
//! and the daemon took before), and handed directly to the daemon's kind
//! of layer ([`AccessLogLayer::direct`]). Both behind the filter the daemon
//! uses, so both pay for asking whether access events are enabled.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use sozu_proxy::access_log::{
    AccessLogFormat, AccessLogLayer, AccessLogWriter, Elapsed, Entry, log_request,
};
use tracing_subscriber::prelude::*;

/// Throws records away.
struct Discard;

impl AccessLogWriter for Discard {
    fn write_text(&self, record: &[u8]) {
        black_box(record);
    }
    fn write_binary(&self, record: &[u8]) {
        black_box(record);
    }
}

/// A request record as the relay makes it.
fn entry() -> Entry<'static> {
    Entry {
        request_id: Some("01ARZ3NDEKTSV4RRFFQ69G5FAV"),
        client: Some("127.0.0.1:41234"),
        cluster: Some("bench"),
        backend: Some("bench-0"),
        backend_address: Some("127.0.0.1:8080"),
        method: Some("GET"),
        host: Some("bench.test"),
        path: Some("/api/v1/items?page=2"),
        protocol: Some("http"),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"),
        status: Some(200),
        bytes_in: Some(0),
        bytes_out: Some(5),
        service: Elapsed::Measured(Duration::from_micros(87)),
        response: Elapsed::Measured(Duration::from_micros(61)),
        connect: Elapsed::Unmeasured,
        ..Entry::default()
    }
}

fn record(c: &mut Criterion, name: &str, direct: bool) {
    let layer = AccessLogLayer::new(AccessLogFormat::Ascii, Arc::new(Discard), "worker-0");
    let layer = if direct { layer.direct() } else { layer };
    let (filter, _handle) = tracing_subscriber::reload::Layer::new(
        tracing_subscriber::EnvFilter::new("info,audit=info,access=info"),
    );
    let subscriber = tracing_subscriber::registry().with(filter).with(layer);
    let entry = entry();
    tracing::subscriber::with_default(subscriber, || {
        c.bench_function(name, |b| b.iter(|| log_request(black_box(&entry))));
    });
}

fn benches(c: &mut Criterion) {
    record(c, "access_log/relay record, ascii, event", false);
    record(c, "access_log/relay record, ascii, direct", true);
}

criterion_group! {
    name = access_log;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(access_log);
