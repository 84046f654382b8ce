//! The bytes a real Sozu CLI and daemon exchanged decode to the messages we
//! expect, and our encoder reproduces them exactly.
//!
//! Fixtures: `tests/fixtures/sozu-2.3/wire/` (recorded from Sozu 2.3.3, the
//! version whose schema we follow) and `sozu-2.1/wire/` (Sozu 2.1.0). Each
//! `NAME.client.bin` holds the frames the CLI sent, `NAME.server.bin` the
//! frames the daemon sent back.

use std::collections::BTreeSet;
use std::io::Cursor;
use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::BytesMut;
use prost::Message;
use tokio_util::codec::Decoder;

use sozu_command::channel::{Channel, DEFAULT_MAX_BUFFER_SIZE, FrameCodec, frame};
use sozu_command::proto::command::{
    AddBackend, Cluster, Event, EventKind, ListListeners, LoadBalancingAlgorithms,
    LoadBalancingParams, PathRule, PathRuleKind, Request, RequestHttpFrontend, Response,
    ResponseContent, ResponseStatus, RulePosition, RunState, SocketAddress, Status,
    SubscribeEvents, TlsVersion, request::RequestType, response_content::ContentType,
};

fn wire_dir(version: &str) -> PathBuf {
    sozu_command::fixtures_dir()
        .join(format!("sozu-{version}"))
        .join("wire")
}

fn read_fixture(version: &str, file: &str) -> Vec<u8> {
    let path = wire_dir(version).join(file);
    std::fs::read(&path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

/// Every frame of a recording, with the exact bytes it occupied. Fails unless
/// the recording is a whole number of frames.
fn frames_of<M: Message + Default>(bytes: &[u8]) -> Vec<(M, &[u8])> {
    let mut frames = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (message, len) = frame::decode::<M>(rest, DEFAULT_MAX_BUFFER_SIZE)
            .expect("a recorded frame decodes")
            .expect("the recording does not end inside a frame");
        frames.push((message, &rest[..len]));
        rest = &rest[len..];
    }
    frames
}

/// Decodes a recording and checks that encoding the decoded messages gives
/// back the recorded bytes, frame by frame.
fn decode_and_reencode<M: Message + Default>(version: &str, file: &str) -> Vec<M> {
    let bytes = read_fixture(version, file);
    frames_of::<M>(&bytes)
        .into_iter()
        .enumerate()
        .map(|(index, (message, recorded))| {
            let encoded = frame::encode_to_vec(&message, DEFAULT_MAX_BUFFER_SIZE).unwrap();
            assert_eq!(
                encoded, recorded,
                "{version}/{file}: frame {index} re-encodes differently"
            );
            message
        })
        .collect()
}

fn requests(version: &str, name: &str) -> Vec<Request> {
    decode_and_reencode(version, &format!("{name}.client.bin"))
}

fn responses(version: &str, name: &str) -> Vec<Response> {
    decode_and_reencode(version, &format!("{name}.server.bin"))
}

fn address(text: &str) -> SocketAddress {
    SocketAddress::from(text.parse::<SocketAddr>().unwrap())
}

fn status_of(response: &Response) -> ResponseStatus {
    ResponseStatus::try_from(response.status).expect("a known status")
}

fn new_cluster() -> Cluster {
    Cluster {
        cluster_id: "newapp".into(),
        sticky_session: false,
        https_redirect: false,
        load_balancing: LoadBalancingAlgorithms::RoundRobin as i32,
        ..Cluster::default()
    }
}

fn new_frontend() -> RequestHttpFrontend {
    RequestHttpFrontend {
        cluster_id: Some("newapp".into()),
        address: address("127.0.0.1:28080"),
        hostname: "new.example.com".into(),
        path: PathRule {
            kind: PathRuleKind::Prefix as i32,
            value: "/x".into(),
        },
        // Sozu's CLI always sends TREE.
        position: RulePosition::Tree as i32,
        ..RequestHttpFrontend::default()
    }
}

fn backend(cluster_id: &str, backend_id: &str, at: &str) -> AddBackend {
    AddBackend {
        cluster_id: cluster_id.into(),
        backend_id: backend_id.into(),
        address: address(at),
        // Sozu's CLI has no weight flag and always sends 0.
        load_balancing_parameters: Some(LoadBalancingParams { weight: 0 }),
        ..AddBackend::default()
    }
}

/// The two answers of a change fanned out to every worker that accepted it.
fn fanned_out_ok() -> Vec<Response> {
    vec![
        Response::processing("Processing worker request..."),
        Response::ok("Successfully applied request to all workers", None),
    ]
}

#[test]
fn fixtures_resolve_from_the_crate() {
    for version in ["2.3", "2.1"] {
        let dir = wire_dir(version);
        assert!(dir.is_dir(), "missing fixture folder {}", dir.display());
    }
}

#[test]
fn status() {
    for version in ["2.3", "2.1"] {
        assert_eq!(
            requests(version, "status"),
            [Request::from(RequestType::Status(Status {}))]
        );
        let answers = responses(version, "status");
        assert_eq!(answers.len(), 2);
        assert_eq!(
            answers[0],
            Response::processing("Querying status of workers...")
        );
        assert_eq!(status_of(&answers[1]), ResponseStatus::Ok);
        let Some(ContentType::Workers(workers)) = answers[1]
            .content
            .as_ref()
            .and_then(|content| content.content_type.clone())
        else {
            panic!("{version}: status answers with WorkerInfos");
        };
        let ids: BTreeSet<u32> = workers.vec.iter().map(|worker| worker.id).collect();
        assert_eq!(ids, BTreeSet::from([0, 1]));
        assert!(
            workers
                .vec
                .iter()
                .all(|worker| worker.pid > 0 && worker.run_state == RunState::Running as i32)
        );
    }
}

#[test]
fn listener_list() {
    for version in ["2.3", "2.1"] {
        assert_eq!(
            requests(version, "listener-list"),
            [Request::from(RequestType::ListListeners(ListListeners {}))]
        );
        let answers = responses(version, "listener-list");
        assert_eq!(answers.len(), 1, "answered without a PROCESSING step");
        assert_eq!(status_of(&answers[0]), ResponseStatus::Ok);
        let Some(ContentType::ListenersList(list)) = answers[0]
            .content
            .as_ref()
            .and_then(|content| content.content_type.clone())
        else {
            panic!("{version}: listener list answers with ListenersList");
        };
        let http = &list.http_listeners["127.0.0.1:28080"];
        assert_eq!(http.address, address("127.0.0.1:28080"));
        assert_eq!(http.sticky_name, "MYSTICKY");
        assert!(http.active);
        let https = &list.https_listeners["127.0.0.1:28443"];
        assert_eq!(https.sticky_name, "SOZUBALANCEID");
        assert_eq!(
            https.versions,
            [TlsVersion::TlsV12 as i32, TlsVersion::TlsV13 as i32]
        );
        assert_eq!(https.alpn_protocols, ["h2", "http/1.1"]);
        let tcp = &list.tcp_listeners["127.0.0.1:28081"];
        assert_eq!(tcp.front_timeout, 60);
        assert!(list.udp_listeners.is_empty());
    }
}

#[test]
fn events_subscription_starts_with_its_own_event() {
    for version in ["2.3", "2.1"] {
        assert_eq!(
            requests(version, "events"),
            [Request::from(RequestType::SubscribeEvents(
                SubscribeEvents {}
            ))]
        );
        let subscribed = Response {
            status: ResponseStatus::Processing as i32,
            message: "main".into(),
            content: Some(ResponseContent::from(ContentType::Event(Event {
                kind: EventKind::EventsSubscribed as i32,
                ..Event::default()
            }))),
        };
        assert_eq!(responses(version, "events"), [subscribed]);
    }
}

#[test]
fn cluster_add() {
    for version in ["2.3", "2.1"] {
        assert_eq!(
            requests(version, "cluster-add"),
            [Request::from(RequestType::AddCluster(new_cluster()))]
        );
        assert_eq!(responses(version, "cluster-add"), fanned_out_ok());
    }
}

#[test]
fn frontend_add() {
    for version in ["2.3", "2.1"] {
        assert_eq!(
            requests(version, "frontend-add"),
            [Request::from(RequestType::AddHttpFrontend(new_frontend()))]
        );
        assert_eq!(responses(version, "frontend-add"), fanned_out_ok());
    }
}

#[test]
fn backend_add() {
    assert_eq!(
        requests("2.3", "backend-add"),
        [Request::from(RequestType::AddBackend(backend(
            "newapp",
            "nb1",
            "127.0.0.1:9101"
        )))]
    );
    assert_eq!(responses("2.3", "backend-add"), fanned_out_ok());
}

#[test]
fn backend_add_for_a_missing_cluster() {
    let request = Request::from(RequestType::AddBackend(backend(
        "nosuchcluster",
        "b1",
        "127.0.0.1:9999",
    )));
    for version in ["2.3", "2.1"] {
        assert_eq!(
            requests(version, "backend-add-bad"),
            std::slice::from_ref(&request)
        );
    }
    // 2.3.3 refuses it in one FAILURE, without asking the workers.
    let refused = responses("2.3", "backend-add-bad");
    assert_eq!(refused.len(), 1);
    assert_eq!(status_of(&refused[0]), ResponseStatus::Failure);
    assert!(refused[0].message.contains("does not exist"));
    assert!(refused[0].content.is_none());
    // 2.1.0 accepted it.
    assert_eq!(responses("2.1", "backend-add-bad"), fanned_out_ok());
}

#[test]
fn cluster_list_by_id() {
    assert_eq!(
        requests("2.3", "cluster-list-newapp"),
        [Request::from(RequestType::QueryClusterById(
            "newapp".into()
        ))]
    );
    let answers = responses("2.3", "cluster-list-newapp");
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0], Response::processing("Querying cluster..."));
    assert_eq!(status_of(&answers[1]), ResponseStatus::Ok);
    let Some(ContentType::WorkerResponses(per_worker)) = answers[1]
        .content
        .as_ref()
        .and_then(|content| content.content_type.clone())
    else {
        panic!("a cluster query answers with WorkerResponses");
    };
    let keys: Vec<&str> = per_worker.map.keys().map(String::as_str).collect();
    assert_eq!(keys, ["0", "1", "main"]);
    for (worker, content) in &per_worker.map {
        let Some(ContentType::Clusters(clusters)) = &content.content_type else {
            panic!("worker {worker} answers with ClusterInformations");
        };
        let [information] = clusters.vec.as_slice() else {
            panic!("worker {worker} knows exactly one cluster newapp");
        };
        assert_eq!(information.configuration, Some(new_cluster()));
        assert_eq!(information.http_frontends, [new_frontend()]);
        assert_eq!(
            information.backends,
            [backend("newapp", "nb1", "127.0.0.1:9101")]
        );
        assert!(information.https_frontends.is_empty() && information.tcp_frontends.is_empty());
    }
}

/// Every recording, whatever its command, goes through the blocking channel
/// and the async codec to the same messages the frame functions give.
#[test]
fn every_recording_reads_the_same_through_every_reader() {
    for version in ["2.3", "2.1"] {
        let mut names: Vec<String> = std::fs::read_dir(wire_dir(version))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert!(names.len() >= 12, "{version}: recordings are missing");
        for name in names {
            if name.ends_with(".client.bin") {
                same_through_every_reader::<Request>(version, &name);
            } else if name.ends_with(".server.bin") {
                same_through_every_reader::<Response>(version, &name);
            }
        }
    }
}

fn same_through_every_reader<M: Message + Default + PartialEq>(version: &str, name: &str) {
    let expected: Vec<M> = decode_and_reencode(version, name);
    let bytes = read_fixture(version, name);

    let mut channel: Channel<M, M, _> = Channel::new(Cursor::new(bytes.clone()));
    let mut through_channel = Vec::new();
    while let Some(message) = channel.read_message(None).unwrap() {
        through_channel.push(message);
    }
    assert!(
        through_channel == expected,
        "{version}/{name}: channel differs"
    );

    let mut codec = FrameCodec::<M, M>::new();
    let mut buffer = BytesMut::from(&bytes[..]);
    let mut through_codec = Vec::new();
    while let Some(item) = codec.decode_eof(&mut buffer).unwrap() {
        through_codec.push(item.unwrap());
    }
    assert!(through_codec == expected, "{version}/{name}: codec differs");
}
