//! Framing throughput: encoding and decoding one frame, and reading it
//! through the blocking channel, for a small request (`status`), a medium one
//! (an HTTP frontend) and a large answer (a listener list with a thousand
//! listeners, about what `listener list` returns from a big deployment).
//!
//! Quick run: `cargo bench -p sozu-command --bench frame -- --quick`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::Cursor;
use std::net::{Ipv4Addr, SocketAddr};

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;

use sozu_command::channel::{Channel, DEFAULT_MAX_BUFFER_SIZE, frame};
use sozu_command::proto::command::{
    HttpListenerConfig, ListenersList, PathRule, PathRuleKind, Request, RequestHttpFrontend,
    Response, RulePosition, SocketAddress, Status, request::RequestType,
    response_content::ContentType,
};

fn status() -> Request {
    Request::from(RequestType::Status(Status {}))
}

fn http_frontend() -> Request {
    Request::from(RequestType::AddHttpFrontend(RequestHttpFrontend {
        cluster_id: Some("shop-backend-production".into()),
        address: SocketAddress::from(SocketAddr::from((Ipv4Addr::LOCALHOST, 8080))),
        hostname: "www.shop.example.com".into(),
        path: PathRule {
            kind: PathRuleKind::Prefix as i32,
            value: "/api/v2/orders".into(),
        },
        method: Some("GET".into()),
        position: RulePosition::Tree as i32,
        tags: BTreeMap::from([
            ("owner".into(), "team-checkout".into()),
            ("env".into(), "production".into()),
        ]),
        ..RequestHttpFrontend::default()
    }))
}

fn listeners_list(count: u16) -> Response {
    let http_listeners = (0..count)
        .map(|index| {
            let address = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 20_000 + index));
            let listener = HttpListenerConfig {
                address: SocketAddress::from(address),
                sticky_name: "SOZUBALANCEID".into(),
                front_timeout: 60,
                back_timeout: 30,
                connect_timeout: 3,
                request_timeout: 10,
                active: true,
                ..HttpListenerConfig::default()
            };
            (address.to_string(), listener)
        })
        .collect();
    Response::ok(
        "Successfully listed listeners",
        Some(ContentType::ListenersList(ListenersList {
            http_listeners,
            ..ListenersList::default()
        })),
    )
}

fn bench_message<M: Message + Default + Clone + 'static>(
    criterion: &mut Criterion,
    name: &str,
    message: &M,
) {
    let bytes = frame::encode_to_vec(message, DEFAULT_MAX_BUFFER_SIZE).unwrap();
    let mut group = criterion.benchmark_group("frame");
    group.throughput(Throughput::Bytes(bytes.len() as u64));

    let mut buffer = BytesMut::with_capacity(bytes.len());
    group.bench_with_input(BenchmarkId::new("encode", name), message, |b, message| {
        b.iter(|| {
            buffer.clear();
            frame::encode(black_box(message), DEFAULT_MAX_BUFFER_SIZE, &mut buffer).unwrap()
        })
    });

    group.bench_with_input(BenchmarkId::new("decode", name), &bytes, |b, bytes| {
        b.iter(|| frame::decode::<M>(black_box(bytes), DEFAULT_MAX_BUFFER_SIZE).unwrap())
    });

    // The whole blocking read path: buffer growth, copying, decoding.
    group.bench_with_input(
        BenchmarkId::new("channel_read", name),
        &bytes,
        |b, bytes| {
            b.iter(|| {
                let mut channel: Channel<M, M, _> = Channel::new(Cursor::new(black_box(bytes)));
                channel.read_message(None).unwrap().unwrap()
            })
        },
    );
    group.finish();
}

fn framing(criterion: &mut Criterion) {
    bench_message(criterion, "status_request", &status());
    bench_message(criterion, "http_frontend_request", &http_frontend());
    bench_message(criterion, "listeners_list_1000", &listeners_list(1000));
}

criterion_group!(benches, framing);
criterion_main!(benches);
