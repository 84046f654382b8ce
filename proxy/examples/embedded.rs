//! Embeds the proxy in a program of its own: start it on a thread, configure
//! it through its channel, proxy one request to a backend started here, and
//! stop it.
//!
//! Run with `cargo run -p sozu-proxy --example embedded`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use sozu_command::proto::command::{
    AddBackend, Cluster, HttpListenerConfig, PathRule, RequestHttpFrontend, RulePosition,
    WorkerResponse, request::RequestType,
};
use sozu_proxy::{ProxyOptions, ResponseReceiver};

/// A one-connection-at-a-time backend that answers "hello from the backend".
fn start_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the backend");
    let address = listener.local_addr().expect("backend address");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            // Read the request head up to its blank line.
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                if line == "\r\n" {
                    break;
                }
                line.clear();
            }
            let body = "hello from the backend";
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    address
}

/// Waits for the answer to `id`, printing events met on the way.
fn acknowledgement(receiver: &mut ResponseReceiver, id: &str) -> WorkerResponse {
    loop {
        let response = receiver.blocking_recv().expect("the proxy stopped");
        if response.id == id {
            return response;
        }
        println!("event: {response:?}");
    }
}

fn get(address: SocketAddr, host: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connect to the proxy");
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let backend = start_backend();
    let listen: SocketAddr = {
        let probe = TcpListener::bind("127.0.0.1:0")?;
        probe.local_addr()?
    };

    // 1. Start the proxy on a thread of its own.
    let (handle, thread) = sozu_proxy::spawn(ProxyOptions::default())?;
    let (sender, mut receiver) = (handle.sender, handle.receiver);

    // 2. Configure it: a listener, a cluster, a frontend, a backend.
    let requests: Vec<(&str, RequestType)> = vec![
        (
            "listener",
            RequestType::AddHttpListener(HttpListenerConfig {
                address: listen.into(),
                sticky_name: "SOZUBALANCEID".into(),
                front_timeout: 60,
                back_timeout: 30,
                connect_timeout: 3,
                request_timeout: 10,
                active: true,
                ..Default::default()
            }),
        ),
        (
            "cluster",
            RequestType::AddCluster(Cluster {
                cluster_id: "example".into(),
                ..Default::default()
            }),
        ),
        (
            "frontend",
            RequestType::AddHttpFrontend(RequestHttpFrontend {
                cluster_id: Some("example".into()),
                address: listen.into(),
                hostname: "example.local".into(),
                path: PathRule::default(),
                position: RulePosition::Tree as i32,
                ..Default::default()
            }),
        ),
        (
            "backend",
            RequestType::AddBackend(AddBackend {
                cluster_id: "example".into(),
                backend_id: "example-0".into(),
                address: backend.into(),
                ..Default::default()
            }),
        ),
    ];
    for (id, request) in requests {
        sender.request(id, request)?;
        let ack = acknowledgement(&mut receiver, id);
        println!("{id}: status {} {}", ack.status, ack.message);
    }

    // 3. Proxy a real request, and one for a host nothing routes.
    println!("--- example.local ---\n{}", get(listen, "example.local"));
    println!(
        "--- unknown.local ---\n{}",
        get(listen, "unknown.local").lines().next().unwrap_or("")
    );

    // 4. Stop: in-flight requests finish first.
    sender.soft_stop("stop")?;
    let ack = acknowledgement(&mut receiver, "stop");
    println!("stop: status {}", ack.status);
    thread.join().expect("proxy thread")?;
    Ok(())
}
