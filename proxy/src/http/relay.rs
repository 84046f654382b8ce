//! The HTTP/1.1 relay: one task per client connection drives both sides.
//! A request head is parsed in place in the connection's buffer (the strict
//! rules of [`crate::http1`]), routed on borrowed slices, rewritten into a
//! buffer the connection reuses (the kept runs of the received head,
//! hop-by-hop headers out, forwarding headers and request id in) and
//! written to a pooled backend connection with the body bytes already read
//! in one `writev`; the body follows by its framing, then the response
//! comes back the same way ([`super::forward`]). Answers to pipelined
//! requests may be held back and written together ([`PIPELINE_BATCH`]).
//! Every timeout runs on the connection's one timer ([`Deadline`]).
//!
//! Sticky sessions and a frontend's host/path rewrites are applied here as
//! on the hyper path ([`super::relay_rewrite`]).
//!
//! Protocol upgrades (WebSocket) become a byte tunnel after the backend's
//! 101 ([`super::tunnel`]); `Expect: 100-continue` waits for the backend's
//! word before the body ([`super::expect`]).
//!
//! What the relay does not serve yet goes to hyper with the bytes already
//! read ([`Ending::HandOver`]): HTTP/1.0, absolute-form and `*` targets,
//! an `Upgrade` that `Connection` does not name, other expectations than
//! one `100-continue`, clusters with HTTP/2 backends, rewrites
//! the relay cannot apply as hyper would ([`super::relay_rewrite::relayable`]),
//! frontends with header edits the relay does not apply itself (more than
//! [`super::relay_plan::MAX_EDITS`], invalid ones, or ones on a header it writes). Every
//! request passed the codec's rules first, whichever path serves it.

use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::access::{LogFields, Record};
use super::answer::{Exchange, listener_template};
use super::forward::write_all;
use super::policy::{self, Admitted, Asked};
use super::relay_plan::{first, idempotent, plan_request, relayable};
use super::relay_rewrite::Changes;
use super::{ConnectionContext, record_refusal, seconds};
use crate::answers::{self, AnswerContext};
use crate::context::StopWatch;
use crate::deadline::Deadline;
use crate::forwarding::Origin;
use crate::http1::edit::EditPlan;
use crate::http1::framing::Framing;
use crate::http1::head::{self, Parsed, RequestHead};
use crate::http1::names::Known;
use crate::http1::{Refusal, Rule};
use crate::settings::ListenerSettings;
use crate::splice::{Client, Splicer};

/// How long a connection closed after an answer keeps reading what the
/// client still sends ([`Conn::linger`]), and how much of it at most.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;

/// Header lines a head may have (more is 431).
pub(super) const MAX_HEADERS: usize = 100;
/// The edit plan of a head of at most [`MAX_HEADERS`] lines.
pub(super) type Plan = EditPlan<{ MAX_HEADERS + 1 }>;

/// How the relay left a connection.
pub(super) enum Ending<C> {
    /// Closed (or to be dropped): nothing more to do.
    Closed,
    /// A request the relay does not serve: hyper takes the connection and
    /// reads these bytes first.
    HandOver(C, Vec<u8>),
}

/// What to do after a request.
pub(super) enum Next {
    Continue,
    /// Close, after reading for a while what the client may still send
    /// ([`Conn::linger`]).
    Close,
    /// Close at once: the exchange ended cleanly, the client asked to
    /// close, and (when the buffer is empty) every byte it sent was read.
    Finish,
    HandOver,
}

/// One client connection and its buffers.
pub(super) struct Conn<C> {
    pub(super) context: Rc<ConnectionContext>,
    pub(super) client: C,
    /// Bytes from the client not consumed yet: a request head, body bytes,
    /// pipelined requests.
    pub(super) front: Vec<u8>,
    /// Bytes from the backend.
    pub(super) back: Vec<u8>,
    /// Lines of the proxy's own in a head: while a request is planned, the
    /// rewritten request line if any and the header lines appended; while
    /// its response is relayed, the response's.
    pub(super) lines: Vec<u8>,
    /// The request head sent to the backend, written when the request is
    /// planned (it is sent again as is when a retry takes another
    /// connection).
    pub(super) head: Vec<u8>,
    /// The value of the request's sticky cookie ([`Prepared::sticky`]).
    pub(super) sticky: Vec<u8>,
    /// The access log fields of the request under way.
    pub(super) log: Vec<u8>,
    /// The timer of every timeout on both sides.
    pub(super) deadline: Deadline,
    /// The client speaks TLS (its session is closed with a goodbye).
    pub(super) tls: bool,
    /// Responses to pipelined requests not written yet: they go out with
    /// the next write to the client ([`PIPELINE_BATCH`]).
    pub(super) pending: Vec<u8>,
    /// The edit plan of the head being rewritten: the request's while it
    /// is planned, then its response's (filled in place: a plan is too
    /// large to move with each head).
    pub(super) plan: Plan,
    /// Its pipe for bodies moved by splice, when the client is plain TCP.
    pub(super) splicer: Splicer,
    /// When the last response was accounted for, if the connection has
    /// not waited since: the next request's timeout runs from there, so
    /// one clock read serves both.
    pub(super) finished_at: Option<std::time::Instant>,
}

/// How many bytes of responses to pipelined requests are held back, at
/// most, to be written to the client together: one write for many small
/// responses instead of one each. Nothing is held back once the client's
/// next request is not already in the buffer.
pub(super) const PIPELINE_BATCH: usize = 16 * 1024;

/// A request the policy let through, ready to be forwarded.
pub(super) struct Prepared {
    pub(super) head_len: usize,
    pub(super) framing: Framing,
    pub(super) head_request: bool,
    /// Idempotent and without body: may be sent again on another
    /// connection when a reused one fails before answering.
    pub(super) replayable: bool,
    /// The client asked to close after this request.
    pub(super) close: bool,
    /// The backend answered before the whole body was read: some of it
    /// may still be on its way from the client.
    pub(super) body_cut: bool,
    /// The request named a sticky backend (its value in [`Conn::sticky`]).
    pub(super) sticky: bool,
    /// The request asks for a protocol upgrade (`Upgrade` named by
    /// `Connection`): a 101 makes both connections a tunnel
    /// ([`super::tunnel`]).
    pub(super) upgrade: bool,
    /// `Expect: 100-continue` with a body to come: the client may wait for
    /// a `100 Continue` before sending it ([`super::expect`]).
    pub(super) expect_continue: bool,
    /// The relay told the client to go on itself: the backend's own
    /// `100 Continue`, if it comes later, is not passed on.
    pub(super) continued: bool,
    pub(super) admitted: Admitted,
    pub(super) record: Record,
}

/// What the head of a request leads to.
#[allow(
    clippy::large_enum_variant,
    reason = "one per request, on the stack: boxing it would allocate"
)]
enum Step {
    Forward(Prepared),
    /// An answer of the proxy's own (the connection closes after it).
    Answer(Vec<u8>),
    /// Refused by the codec: answered with this status, then closed.
    Refuse(Refusal),
    HandOver,
}

/// What waiting for a request head gave.
enum HeadWait {
    /// A head (or more bytes than a head may have) is in the buffer.
    Ready,
    Closed,
    TimedOut,
}

/// Serves a client connection until it closes, or hands it over.
pub(super) async fn serve<C>(client: C, context: Rc<ConnectionContext>) -> Ending<C>
where
    C: Client,
{
    let shared = context.shared.clone();
    let floor = shortest_timeout(&context.listener.settings.borrow());
    let mut conn = Conn {
        front: shared.buffers.take(),
        back: shared.buffers.take(),
        lines: Vec::with_capacity(512),
        head: Vec::with_capacity(1024),
        sticky: Vec::new(),
        log: Vec::new(),
        deadline: Deadline::new(floor),
        pending: Vec::new(),
        plan: Plan::empty(),
        tls: context.listener.tls.is_some(),
        splicer: Splicer::new(shared.options.splice_pipe_capacity),
        finished_at: None,
        context,
        client,
    };
    let hand_over = conn.run().await;
    // However the connection ended, the responses already received are
    // the client's.
    let timeout = seconds(conn.context.listener.settings.borrow().front_timeout);
    let _ = conn.flush_pending(timeout).await;
    let Conn {
        client,
        front,
        back,
        ..
    } = conn;
    shared.buffers.give(back);
    if hand_over {
        return Ending::HandOver(client, front);
    }
    shared.buffers.give(front);
    Ending::Closed
}

impl<C: Client> Conn<C> {
    /// Serves requests until the connection closes (`false`) or one is to
    /// be handed over (`true`).
    async fn run(&mut self) -> bool {
        let shared = self.context.shared.clone();
        let mut stopping = shared.stopping.watch();
        loop {
            let config = self.context.listener.settings.borrow().clone();
            match self.read_head(&config, &mut stopping).await {
                HeadWait::Ready => {}
                HeadWait::Closed => return false,
                HeadWait::TimedOut => {
                    if self.context.requests.get() == 0 {
                        let timeout = seconds(config.request_timeout);
                        super::answer_request_timeout(&mut self.client, &config, timeout, &shared)
                            .await;
                    }
                    return false;
                }
            }
            let closing = stopping.is_stopping();
            // Forwarded here, not through a function of its own: the
            // exchange's future is moved whole at each request, once is
            // enough. The proxy's own answers are rarer, and boxed.
            let next = match self.prepare(&config) {
                Step::Forward(prepared) => {
                    super::forward::exchange(self, &config, prepared, closing).await
                }
                step => Box::pin(self.answer_step(&config, step)).await,
            };
            match next {
                Next::Continue if !stopping.is_stopping() => {}
                Next::Continue => return false,
                Next::Close => {
                    let _ = self.flush_pending(seconds(config.front_timeout)).await;
                    self.linger().await;
                    return false;
                }
                Next::Finish if self.front.is_empty() => {
                    let _ = self.flush_pending(seconds(config.front_timeout)).await;
                    // Nothing unread: closing sends no reset, and a TLS
                    // session still says goodbye.
                    if self.tls {
                        let timeout = seconds(config.front_timeout);
                        let _ = self.deadline.within(timeout, self.client.shutdown()).await;
                    }
                    return false;
                }
                Next::Finish => {
                    let _ = self.flush_pending(seconds(config.front_timeout)).await;
                    self.linger().await;
                    return false;
                }
                Next::HandOver => return true,
            }
        }
    }

    /// Writes the responses held back, if any.
    pub(super) async fn flush_pending(&mut self, timeout: Duration) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut slices = [std::io::IoSlice::new(&self.pending)];
        let written = write_all(&mut self.client, &mut slices, &mut self.deadline, timeout).await;
        self.pending.clear();
        written
    }

    /// Closes the way out, then reads and drops what the client still sends
    /// (a body the proxy answered without reading, say) for a little while,
    /// before the socket is dropped: closing a socket with unread bytes
    /// makes the kernel send a reset, which can make the client lose the
    /// answer it was just sent.
    async fn linger(&mut self) {
        let deadline = tokio::time::Instant::now() + LINGER_TIME;
        if tokio::time::timeout_at(deadline, self.client.shutdown())
            .await
            .is_err()
        {
            return;
        }
        // What comes is read into the client's buffer (nothing there is
        // wanted any more) and dropped.
        let mut discarded = 0;
        while discarded < LINGER_BYTES {
            self.front.clear();
            self.front.reserve(4096);
            match tokio::time::timeout_at(deadline, self.client.read_buf(&mut self.front)).await {
                Ok(Ok(read)) if read > 0 => discarded += read,
                _ => return,
            }
        }
    }

    /// Waits until the buffer holds a whole request head (or more bytes
    /// than a head may take), within the request timeout.
    async fn read_head(&mut self, config: &ListenerSettings, stopping: &mut StopWatch) -> HeadWait {
        let max = self.context.shared.options.max_header_size;
        let now = match self.finished_at.take() {
            Some(finished) => tokio::time::Instant::from_std(finished),
            None => tokio::time::Instant::now(),
        };
        let mut end = now + seconds(config.request_timeout);
        let mut searched = 0;
        loop {
            // Empty lines before a request line are ignored (RFC 9112 §2.2).
            let blank = self.front.iter().take_while(|&&b| b == b'\r' || b == b'\n');
            let leading = blank.count() & !1;
            if leading > 0 && self.front[..leading].chunks(2).all(|pair| pair == b"\r\n") {
                self.front.drain(..leading);
                searched = 0;
            }
            if empty_line_in(&self.front, searched) {
                return HeadWait::Ready;
            }
            if self.front.len() > max {
                return HeadWait::Ready;
            }
            searched = self.front.len().saturating_sub(3);
            let idle = self.front.is_empty();
            if self.front.len() == self.front.capacity() {
                self.front.reserve(self.front.len().min(max + 1));
            }
            let stop_now = idle && self.context.requests.get() > 0 && stopping.is_stopping();
            if stop_now {
                return HeadWait::Closed;
            }
            // The client may wait for its answers before sending more; the
            // time a slow reader takes to read them is not the next
            // request's.
            if !self.pending.is_empty() {
                let timeout = seconds(config.front_timeout);
                if self.flush_pending(timeout).await.is_err() {
                    return HeadWait::Closed;
                }
                end = tokio::time::Instant::now() + seconds(config.request_timeout);
            }
            // Polled in this order (no random draw for fairness): the stop
            // is looked at before each wait anyway.
            tokio::select! {
                biased;
                read = self.deadline.until(end, self.client.read_buf(&mut self.front)) => {
                    match read {
                        Ok(Ok(0)) | Ok(Err(_)) => return HeadWait::Closed,
                        Ok(Ok(_)) => {}
                        Err(_) => return HeadWait::TimedOut,
                    }
                }
                () = stopping.stopped(), if idle && !stopping.is_stopping() => {}
            }
        }
    }

    /// Answers a request the proxy does not forward (its own answer, a
    /// refusal by the codec), or hands it over.
    async fn answer_step(&mut self, config: &ListenerSettings, step: Step) -> Next {
        match step {
            // Forwarded by `run`.
            Step::Forward(_) => Next::Close,
            Step::Answer(bytes) => {
                let timeout = seconds(config.front_timeout);
                let _ = self.flush_pending(timeout).await;
                let mut slices = [std::io::IoSlice::new(&bytes)];
                let deadline = &mut self.deadline;
                let _ = write_all(&mut self.client, &mut slices, deadline, timeout).await;
                Next::Close
            }
            Step::Refuse(refusal) => {
                self.refuse(config, refusal).await;
                Next::Close
            }
            Step::HandOver => Next::HandOver,
        }
    }

    /// Answers a request the codec refused, counted and logged.
    async fn refuse(&mut self, config: &ListenerSettings, refusal: Refusal) {
        let status = refusal.status();
        let id = ulid::Ulid::new().to_string();
        let message = format!("The request was refused: {:?}.", refusal.rule);
        let context = AnswerContext {
            request_id: &id,
            message: &message,
            phase: "request head",
            ..Default::default()
        };
        let template = listener_template(config, status);
        let response = answers::render(status, template.as_deref(), &context, &config.id_header);
        let bytes = answers::to_bytes(response);
        let timeout = seconds(config.front_timeout);
        let _ = self.flush_pending(timeout).await;
        let mut slices = [std::io::IoSlice::new(&bytes)];
        let _ = write_all(&mut self.client, &mut slices, &mut self.deadline, timeout).await;
        let _ = self.deadline.within(timeout, self.client.shutdown()).await;
        let shared = &self.context.shared;
        record_refusal(shared, status, bytes.len() as u64, Duration::ZERO);
        tracing::info!(target: "access", request_id = %id, client = %self.context.peer, status, rule = ?refusal.rule, "request");
    }

    /// Parses the head in the buffer and decides what becomes of it.
    fn prepare(&mut self, config: &ListenerSettings) -> Step {
        let max = self.context.shared.options.max_header_size;
        let mut headers = head::slots::<MAX_HEADERS>();
        let head = match head::parse_request(&self.front, &mut headers, max) {
            Ok(Parsed::Complete(head)) => head,
            Ok(Parsed::Partial) => return Step::Refuse(Refusal::request(Rule::HeadTooLarge)),
            Err(refusal) => return Step::Refuse(refusal),
        };
        // An Upgrade that Connection does not name, or an expectation
        // other than one `100-continue`, stays hyper's.
        if head.minor_version != 1
            || !head.target.starts_with('/')
            || (head.lines.has(Known::Upgrade) && !head.upgrade)
            || head.lines.count(Known::Expect) > usize::from(head.expect_continue)
        {
            return Step::HandOver;
        }
        let asked = Asked {
            host: head.host,
            path: head.target,
            method: head.method,
        };
        let decided = policy::decide(&self.context, config, &asked, |cluster| {
            let value = first((head.headers, &head.lines), Known::Authorization);
            crate::auth::authorized_value(value, &cluster.authorized_hashes)
        });
        let admitted = match decided {
            Ok(admitted) => admitted,
            Err(refused) => {
                self.count_request();
                let mut exchange = self.exchange_for(config, &head);
                let response = exchange.refuse(refused);
                let mut bytes = answers::to_bytes(response);
                if head.method == "HEAD"
                    && let Some(end) = find_blank_line(&bytes, 0)
                {
                    bytes.truncate(end);
                }
                return Step::Answer(bytes);
            }
        };
        if !relayable(&admitted, config.id_header.as_str()) {
            return Step::HandOver;
        }
        self.count_request();
        let fields = LogFields::capture(
            &mut self.log,
            head.method,
            head.host,
            head.target,
            first((head.headers, &head.lines), Known::UserAgent),
        );
        let record = Record::new(fields, config.secure);
        let origin = Origin {
            peer: self.context.peer,
            listener: config
                .public_address
                .unwrap_or(self.context.listener_address),
            secure: config.secure,
        };
        let values = self.context.forwarding(&origin);
        let route = &admitted.route;
        let changes = Changes {
            host: route.rewrite_host(),
            path: route.rewrite_path(),
            sticky_name: admitted
                .cluster_config
                .sticky_session
                .then_some(config.sticky_name.as_str()),
        };
        let planned = plan_request(
            config,
            &self.front,
            &head,
            (&values, &record),
            route.request_headers(),
            changes,
            (
                &mut self.lines,
                &mut self.sticky,
                &mut self.head,
                &mut self.plan,
            ),
        );
        match planned {
            Some(sticky) => Step::Forward(Prepared {
                head_len: head.len,
                framing: head.framing,
                head_request: head.method == "HEAD",
                replayable: head.framing == Framing::Empty && idempotent(head.method),
                close: !head.connection.persistent(head.minor_version),
                body_cut: false,
                upgrade: head.upgrade,
                expect_continue: head.expect_continue && has_body(head.framing),
                continued: false,
                sticky,
                admitted,
                record,
            }),
            None => Step::Refuse(Refusal::request(Rule::TooManyHeaders)),
        }
    }

    fn count_request(&self) {
        let requests = &self.context.requests;
        requests.set(requests.get() + 1);
        self.context.request_arrived.notify_one();
    }

    /// An exchange record of the hyper path's kind, for an answer.
    fn exchange_for(&self, config: &ListenerSettings, head: &RequestHead<'_, '_>) -> Exchange {
        let route = format!("{}{}", head.host.unwrap_or("-"), head.target);
        Exchange {
            started: std::time::Instant::now(),
            request_id: super::answer::new_request_id(),
            id_header: config.id_header.clone(),
            method: http::Method::from_bytes(head.method.as_bytes()).unwrap_or_default(),
            route,
            frontend: None,
            backend: None,
            connect_time: None,
            response_time: None,
            upload: Rc::default(),
            shared: self.context.shared.clone(),
            peer: self.context.peer,
            secure: config.secure,
        }
    }
}

/// Whether a request of this framing has a body to send.
fn has_body(framing: Framing) -> bool {
    match framing {
        Framing::Length(length) => length > 0,
        Framing::Chunked => true,
        _ => false,
    }
}

/// The shortest of a listener's timeouts: how far ahead a connection's
/// timer is armed at most.
fn shortest_timeout(config: &ListenerSettings) -> Duration {
    let timeouts = [
        config.request_timeout,
        config.front_timeout,
        config.back_timeout,
        config.connect_timeout,
    ];
    seconds(timeouts.into_iter().min().unwrap_or(1))
}

/// Whether `bytes` from `from` on hold the end of a head: an empty line,
/// ended by CRLF or (refused by the codec, but an end all the same) a bare
/// LF.
fn empty_line_in(bytes: &[u8], from: usize) -> bool {
    let mut at = from;
    while let Some(lf) = bytes
        .get(at..)
        .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
    {
        let next = at + lf + 1;
        match bytes.get(next..next + 2) {
            Some([b'\n', _]) | Some([b'\r', b'\n']) => return true,
            Some(_) => at = next,
            None => return bytes.get(next) == Some(&b'\n'),
        }
    }
    false
}

/// Where the first empty line (CRLF CRLF) ends, searching from `from`.
pub(super) fn find_blank_line(bytes: &[u8], from: usize) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|at| from + at + 4)
}

#[cfg(test)]
mod tests {
    use super::empty_line_in;

    #[test]
    fn the_end_of_a_head_is_found_over_any_split() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        for split in 0..head.len() {
            // Not complete before its last byte, complete with it.
            assert!(!empty_line_in(&head[..split], 0), "{split}");
            let from = split.saturating_sub(3);
            assert!(empty_line_in(head, from), "{split}");
        }
        assert!(empty_line_in(b"GET / HTTP/1.1\nHost: a\n\n", 0));
        assert!(!empty_line_in(b"GET / HTTP/1.1\r\nHost: a\r\n\r", 0));
    }
}
