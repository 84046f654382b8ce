//! One request sent to several workers, and what they all answered.
//!
//! Every request the main process sends to all workers (a change, a stop,
//! a query merged from their answers, taking a change back) goes through
//! [`ask_all`], and its outcome is read through [`FanOut`]: which workers
//! answered OK, and a [`WorkerFailures`] naming every worker that refused,
//! died or stayed silent, written the same way in every message.

use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use sozu_command::proto::command::{Request, ResponseStatus, WorkerRequest, WorkerResponse};

use crate::workers::{NoAnswer, Worker};

/// Sends `request` to each of `workers` (each copy with an id from
/// `next_id`) and waits for every answer, each at most `timeout` (`None`:
/// no limit). The answers are in the order of `workers`.
pub async fn ask_all(
    workers: &[Rc<Worker>],
    request: &Request,
    mut next_id: impl FnMut() -> String,
    timeout: Option<Duration>,
) -> FanOut {
    let asks = workers.iter().map(|worker| {
        let request = WorkerRequest {
            id: next_id(),
            content: request.clone(),
        };
        async move { (worker.id, worker.ask(request, timeout).await) }
    });
    FanOut {
        answers: futures::future::join_all(asks).await,
    }
}

/// What every worker asked answered (or why it did not), by worker id.
#[derive(Debug, Default)]
pub struct FanOut {
    answers: Vec<(u32, Result<WorkerResponse, NoAnswer>)>,
}

impl FanOut {
    /// The workers that answered OK, with their answers.
    pub fn answered_ok(&self) -> impl Iterator<Item = (u32, &WorkerResponse)> {
        self.answers.iter().filter_map(|(id, answer)| match answer {
            Ok(response) if is_ok(response) => Some((*id, response)),
            _ => None,
        })
    }

    /// The answers of the workers that answered OK, taken out.
    pub fn into_answered_ok(self) -> impl Iterator<Item = (u32, WorkerResponse)> {
        self.answers
            .into_iter()
            .filter_map(|(id, answer)| match answer {
                Ok(response) if is_ok(&response) => Some((id, response)),
                _ => None,
            })
    }

    /// Whether worker `id` was asked and answered OK.
    pub fn ok_from(&self, id: u32) -> bool {
        self.answered_ok().any(|(answered, _)| answered == id)
    }

    /// The workers that did not refuse the request: they answered OK, or
    /// did not answer (and may have applied it). A worker that refused
    /// applied nothing.
    pub fn not_refused_by(&self) -> Vec<u32> {
        self.answers
            .iter()
            .filter(|(_, answer)| {
                !matches!(answer, Ok(response) if response.status == ResponseStatus::Failure as i32)
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// `Ok` when every worker answered OK, else every one that did not.
    pub fn failures(&self) -> Result<(), WorkerFailures> {
        let failed: Vec<(u32, String)> = self
            .answers
            .iter()
            .filter_map(|(id, answer)| match answer {
                Ok(response) if is_ok(response) => None,
                Ok(response) => Some((*id, response.message.clone())),
                Err(no_answer) => Some((*id, no_answer.to_string())),
            })
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(WorkerFailures(failed))
        }
    }
}

fn is_ok(response: &WorkerResponse) -> bool {
    response.status == ResponseStatus::Ok as i32
}

/// The workers that did not answer a request OK, each with why. Displayed
/// as `worker 0: reason; worker 1: no answer within 2s`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerFailures(Vec<(u32, String)>);

impl fmt::Display for WorkerFailures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, (id, reason)) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            write!(f, "worker {id}: {reason}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: ResponseStatus, message: &str) -> WorkerResponse {
        WorkerResponse {
            id: "REQ-0".into(),
            status: status as i32,
            message: message.into(),
            content: None,
        }
    }

    #[test]
    fn failures_name_every_worker_that_refused_or_did_not_answer() {
        let all_ok = FanOut {
            answers: vec![(0, Ok(response(ResponseStatus::Ok, "")))],
        };
        assert_eq!(all_ok.failures(), Ok(()));
        assert!(all_ok.ok_from(0));

        let mixed = FanOut {
            answers: vec![
                (0, Ok(response(ResponseStatus::Ok, ""))),
                (1, Ok(response(ResponseStatus::Failure, "address in use"))),
                (2, Err(NoAnswer::Timeout(Duration::from_secs(2)))),
                (3, Err(NoAnswer::Gone)),
            ],
        };
        assert_eq!(
            mixed.failures().unwrap_err().to_string(),
            "worker 1: address in use; worker 2: no answer within 2s; \
             worker 3: the worker is not running"
        );
        assert_eq!(
            mixed.answered_ok().map(|(id, _)| id).collect::<Vec<_>>(),
            [0]
        );
        assert!(!mixed.ok_from(1) && !mixed.ok_from(2) && !mixed.ok_from(9));
        // A worker that refused applied nothing; a silent one may have.
        assert_eq!(mixed.not_refused_by(), [0, 2, 3]);
    }
}
