//! The async `FrameCodec` over real tokio unix sockets: a daemon's command
//! connection, a worker channel, and the blocking client against the async
//! server (the two transports share one frame format).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio_util::codec::{Framed, FramedRead};

use sozu_command::channel::{
    ChannelError, CommandChannel, CommandServerCodec, FrameCodec, MainToWorkerCodec,
    WorkerToMainCodec, frame,
};
use sozu_command::proto::command::{
    Request, Response, ResponseStatus, Status, WorkerRequest, WorkerResponse, request::RequestType,
};

fn status_request() -> Request {
    Request::from(RequestType::Status(Status {}))
}

/// What a daemon does with each decoded item: answer it, and keep the
/// connection unless the stream is out of sync.
async fn answer_everything(server: UnixStream) -> Vec<String> {
    let mut framed = Framed::new(server, CommandServerCodec::new());
    let mut log = Vec::new();
    while let Some(item) = framed.next().await {
        match item {
            Ok(Ok(request)) => {
                log.push(request.kind_name());
                framed
                    .send(Response::ok(request.kind_name(), None))
                    .await
                    .unwrap();
            }
            Ok(Err(bad_frame)) => {
                assert!(bad_frame.is_recoverable());
                log.push("UNDECODABLE".to_owned());
                framed
                    .send(Response::failure(bad_frame.to_string()))
                    .await
                    .unwrap();
            }
            Err(fatal) => {
                assert!(!fatal.is_recoverable());
                log.push(format!("FATAL {fatal}"));
                let _ = framed.send(Response::failure(fatal.to_string())).await;
                break;
            }
        }
    }
    log
}

#[tokio::test]
async fn a_bad_payload_gets_a_failure_and_the_connection_goes_on() {
    let (client, server) = UnixStream::pair().unwrap();
    let daemon = tokio::spawn(answer_everything(server));
    let mut client = Framed::new(client, FrameCodec::<Response, Request>::new());

    client.send(status_request()).await.unwrap();
    let answer = client.next().await.unwrap().unwrap().unwrap();
    assert_eq!(answer, Response::ok("STATUS", None));

    // save_state (field 1, a string) declared longer than the payload.
    client
        .get_mut()
        .write_all(&[11, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0x7f, 0x00])
        .await
        .unwrap();
    let answer = client.next().await.unwrap().unwrap().unwrap();
    assert_eq!(answer.status, ResponseStatus::Failure as i32);
    assert!(
        answer.message.contains("11-byte frame"),
        "{}",
        answer.message
    );

    client.send(Request::default()).await.unwrap();
    let answer = client.next().await.unwrap().unwrap().unwrap();
    assert_eq!(answer.message, "EMPTY");

    drop(client);
    let log = daemon.await.unwrap();
    assert_eq!(log, ["STATUS", "UNDECODABLE", "EMPTY"]);
}

#[tokio::test]
async fn a_bad_length_prefix_ends_the_connection() {
    let (client, server) = UnixStream::pair().unwrap();
    let daemon = tokio::spawn(answer_everything(server));
    let mut client = Framed::new(client, FrameCodec::<Response, Request>::new());

    client
        .get_mut()
        .write_all(&u64::MAX.to_le_bytes())
        .await
        .unwrap();
    let answer = client.next().await.unwrap().unwrap().unwrap();
    assert_eq!(answer.status, ResponseStatus::Failure as i32);
    assert!(answer.message.contains("cannot be resynchronised"));
    // The daemon dropped its end: the client sees a clean end of stream.
    assert!(client.next().await.is_none());

    let log = daemon.await.unwrap();
    assert_eq!(log.len(), 1);
    assert!(log[0].starts_with("FATAL"));
}

#[tokio::test]
async fn a_stream_cut_inside_a_frame_is_truncation() {
    let (mut client, server) = UnixStream::pair().unwrap();
    let whole = frame::encode_to_vec(&status_request(), 100).unwrap();
    client.write_all(&whole[..whole.len() - 1]).await.unwrap();
    drop(client);
    let mut reader = FramedRead::new(server, CommandServerCodec::new());
    let error = reader.next().await.unwrap().unwrap_err();
    assert!(matches!(
        error,
        ChannelError::Truncated {
            got: 9,
            expected: 10
        }
    ));
    assert!(reader.next().await.is_none());
}

#[tokio::test]
async fn the_worker_channel_echoes_ids() {
    let (main_end, worker_end) = UnixStream::pair().unwrap();
    let worker = tokio::spawn(async move {
        let mut channel = Framed::new(worker_end, WorkerToMainCodec::new());
        while let Some(Ok(Ok(order))) = channel.next().await {
            channel
                .send(WorkerResponse {
                    id: order.id,
                    status: ResponseStatus::Ok as i32,
                    message: order.content.kind_name(),
                    content: None,
                })
                .await
                .unwrap();
        }
    });

    let mut main = Framed::new(main_end, MainToWorkerCodec::new());
    for index in 0..3 {
        main.send(WorkerRequest {
            id: format!("ID-{index}"),
            content: status_request(),
        })
        .await
        .unwrap();
    }
    for index in 0..3 {
        let answer = main.next().await.unwrap().unwrap().unwrap();
        assert_eq!(answer.id, format!("ID-{index}"));
        assert_eq!(answer.message, "STATUS");
    }
    drop(main);
    worker.await.unwrap();
}

#[test]
fn the_blocking_client_talks_to_the_async_server() {
    let (client, server) = std::os::unix::net::UnixStream::pair().unwrap();
    server.set_nonblocking(true).unwrap();
    let daemon = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let server = UnixStream::from_std(server).unwrap();
            let mut framed = Framed::new(server, CommandServerCodec::new());
            while let Some(Ok(Ok(request))) = framed.next().await {
                framed.send(Response::processing("working")).await.unwrap();
                framed
                    .send(Response::ok(request.kind_name(), None))
                    .await
                    .unwrap();
            }
        });
    });

    let mut client = CommandChannel::new(client);
    for _ in 0..3 {
        let mut progress = 0;
        let answer = client
            .exchange(&status_request(), Some(Duration::from_secs(10)), |_| {
                progress += 1
            })
            .unwrap();
        assert_eq!(answer.message, "STATUS");
        assert_eq!(progress, 1);
    }
    drop(client);
    daemon.join().unwrap();
}
