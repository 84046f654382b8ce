//! Inside a server, a request is applied whole or not at all: one whose
//! runtime part fails (here, listening on an address another socket holds)
//! leaves neither the state nor the runtime changed, so the same request
//! succeeds once the cause is gone.

use std::net::TcpListener;

use sozu_command::proto::command::{
    ActivateListener, HttpListenerConfig, ListenerType, ResponseStatus, WorkerResponse,
    request::RequestType,
};
use sozu_proxy::{ProxyOptions, ResponseReceiver};

fn answer_to(receiver: &mut ResponseReceiver, id: &str) -> WorkerResponse {
    loop {
        let response = receiver.blocking_recv().expect("the proxy stopped");
        if response.id == id {
            return response;
        }
    }
}

#[test]
fn a_request_refused_at_run_time_leaves_nothing_behind() {
    let squatter = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = squatter.local_addr().unwrap();
    let (handle, thread) = sozu_proxy::spawn(ProxyOptions::default()).unwrap();
    let (sender, mut receiver) = (handle.sender, handle.receiver);
    let listener = HttpListenerConfig {
        address: address.into(),
        active: true,
        front_timeout: 60,
        back_timeout: 30,
        connect_timeout: 3,
        request_timeout: 10,
        ..Default::default()
    };
    let activate = RequestType::ActivateListener(ActivateListener {
        address: address.into(),
        proxy: ListenerType::Http as i32,
        from_scm: false,
        interface: None,
    });

    // An active listener on a busy address: refused, and not kept.
    sender
        .request("add-busy", RequestType::AddHttpListener(listener.clone()))
        .unwrap();
    let refused = answer_to(&mut receiver, "add-busy");
    assert_eq!(refused.status, ResponseStatus::Failure as i32);
    assert!(
        refused.message.contains(&address.to_string()),
        "{}",
        refused.message
    );

    // So it can be added again (before, the refused listener stayed in the
    // server's state: "already exists"), inactive, then activated on the
    // busy address: refused, and activated once the address is free.
    sender
        .request(
            "add-inactive",
            RequestType::AddHttpListener(HttpListenerConfig {
                active: false,
                ..listener.clone()
            }),
        )
        .unwrap();
    let added = answer_to(&mut receiver, "add-inactive");
    assert_eq!(added.status, ResponseStatus::Ok as i32, "{}", added.message);
    sender.request("activate-busy", activate.clone()).unwrap();
    let refused = answer_to(&mut receiver, "activate-busy");
    assert_eq!(refused.status, ResponseStatus::Failure as i32);

    drop(squatter);
    sender.request("activate", activate).unwrap();
    let activated = answer_to(&mut receiver, "activate");
    assert_eq!(
        activated.status,
        ResponseStatus::Ok as i32,
        "{}",
        activated.message
    );
    // It listens now.
    assert!(std::net::TcpStream::connect(address).is_ok());

    sender.hard_stop("stop").unwrap();
    answer_to(&mut receiver, "stop");
    thread.join().unwrap().unwrap();
}
