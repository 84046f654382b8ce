//! The HTTP/1 codec on a typical request head of about 400 bytes: parsing
//! it in place (framing and host included) and planning its edit (hop-by-hop
//! lines dropped, forwarding headers appended) into `IoSlice`s for one
//! `writev`.
//!
//! The codec is not part of the embedding API yet, so its source files are
//! compiled into this bench directly.

use std::hint::black_box;
use std::io::IoSlice;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

#[allow(
    dead_code,
    unused_imports,
    reason = "only the parser and the plan are measured"
)]
#[path = "../src/http1/mod.rs"]
mod http1;

use http1::edit::{EditOptions, EditPlan};
use http1::head::{self, Parsed, parse_request};

const HEAD: &[u8] = b"GET /api/v1/items?page=2&sort=name HTTP/1.1\r\n\
Host: app.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Connection: keep-alive\r\n\
Cookie: session=0123456789\r\n\
Upgrade-Insecure-Requests: 1\r\n\
Cache-Control: max-age=0\r\n\
\r\n";

const SLOTS: usize = 64;

fn parse_and_plan(buf: &[u8]) -> usize {
    let mut headers = head::slots::<SLOTS>();
    let Ok(Parsed::Complete(head)) = parse_request(buf, &mut headers, 16 * 1024) else {
        panic!("the head parses");
    };
    let options = EditOptions {
        drop: &["x-forwarded-for", "x-forwarded-proto", "x-forwarded-port"],
        ..EditOptions::default()
    };
    let plan: EditPlan<{ SLOTS + 1 }> =
        EditPlan::new(buf, head.len, (head.headers, &head.lines), &options).expect("fits");
    let appended: [&[u8]; 4] = [
        b"X-Forwarded-For: 192.0.2.1\r\n",
        b"X-Forwarded-Proto: http\r\n",
        b"X-Forwarded-Port: 80\r\n",
        b"Sozu-Id: 01HZY3J5K8W4Q2M0N6P9R7S1T3\r\n",
    ];
    let mut slices = [IoSlice::new(&[]); SLOTS + 8];
    let count = plan
        .slices(buf, &appended, &mut slices)
        .expect("enough slices");
    black_box(&slices[..count]);
    black_box(head.host).map_or(0, str::len) + count
}

fn bench(c: &mut Criterion) {
    assert!((380..=420).contains(&HEAD.len()), "{}", HEAD.len());
    c.bench_function("http1_head/parse+plan 400-byte request", |b| {
        b.iter(|| parse_and_plan(black_box(HEAD)))
    });
    c.bench_function("http1_head/httparse alone", |b| {
        b.iter(|| {
            let mut headers = [httparse::EMPTY_HEADER; SLOTS];
            let mut request = httparse::Request::new(&mut headers);
            black_box(request.parse(black_box(HEAD)).is_ok())
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
