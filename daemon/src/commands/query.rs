//! Queries every worker answers, merged into one answer: the status of the
//! workers, cluster and certificate queries (with the main process's own
//! answer beside the workers'), and metrics.

use std::rc::Rc;

use sozu_command::proto::command::{
    AggregatedMetrics, QueryMetricsOptions, Request, Response, ResponseContent, WorkerResponses,
    response_content::ContentType,
};

use super::Answers;
use super::listing::worker_infos;
use crate::events;
use crate::main_process::Main;
use crate::metrics;

/// `status`: the workers, each NOT_ANSWERING unless it answered in time.
pub async fn status(main: &Rc<Main>, request: &Request, answers: &Answers) {
    let _ = answers.send(Response::processing("Querying status of workers..."));
    let results = main.fan_out(request, Some(main.worker_timeout())).await;
    let _ = answers.send(Response::ok(
        "Successfully collected the status of workers",
        Some(ContentType::Workers(worker_infos(main, Some(&results)))),
    ));
}

/// A query every worker answers: their answers by worker id, plus the
/// main process's own (as `main`) for the cluster queries.
pub async fn merged_query(main: &Rc<Main>, request: &Request, answers: &Answers) {
    let _ = answers.send(Response::processing("Querying workers..."));
    let results = main.fan_out(request, Some(main.worker_timeout())).await;
    if let Err(failures) = results.failures() {
        let _ = answers.send(Response::failure(format!(
            "some workers could not answer: {failures}"
        )));
        return;
    }
    let mut map: std::collections::BTreeMap<String, ResponseContent> = results
        .into_answered_ok()
        .map(|(id, response)| (id.to_string(), response.content.unwrap_or_default()))
        .collect();
    let own = request
        .request_type
        .as_ref()
        .and_then(|request| main.state().answer_cluster_query(request));
    if let Some(content) = own {
        map.insert(events::MAIN.to_owned(), ResponseContent::from(content));
    }
    let _ = answers.send(Response::ok(
        "Successfully queried workers",
        Some(ContentType::WorkerResponses(WorkerResponses { map })),
    ));
}

/// `query_metrics`: every worker's metrics merged with the main process's.
pub async fn metrics(
    main: &Rc<Main>,
    request: &Request,
    options: &QueryMetricsOptions,
    answers: &Answers,
) {
    let _ = answers.send(Response::processing("Querying metrics..."));
    let aggregated = match aggregate(main, request, options, false).await {
        Ok(aggregated) => aggregated,
        Err(failure) => {
            let _ = answers.send(Response::failure(failure));
            return;
        }
    };
    let _ = answers.send(if options.list {
        Response::ok(
            "Successfully listed available metrics",
            Some(ContentType::AvailableMetrics(metrics::available(
                &aggregated,
            ))),
        )
    } else {
        Response::ok(
            "Successfully aggregated metrics",
            Some(ContentType::Metrics(aggregated)),
        )
    });
}

/// Every worker's metrics merged with the main process's own. A worker
/// that does not answer fails the whole query, unless `partial`: then it
/// is left out and reported down (the Prometheus endpoint's way).
pub async fn aggregate(
    main: &Rc<Main>,
    request: &Request,
    options: &QueryMetricsOptions,
    partial: bool,
) -> Result<AggregatedMetrics, String> {
    let results = main.fan_out(request, Some(main.worker_timeout())).await;
    if !partial && let Err(failures) = results.failures() {
        return Err(format!("some workers could not answer: {failures}"));
    }
    let worker_count = u32::from(main.config().worker_count);
    let mut ids: Vec<u32> = (0..worker_count).collect();
    ids.extend(main.workers().iter().map(|worker| worker.id));
    ids.sort_unstable();
    ids.dedup();
    let restarts = main.counters().restarts.borrow().clone();
    let facts = metrics::MainFacts {
        changes: main.counters().changes.get(),
        last_save: main.counters().last_save.get(),
        workers: ids
            .into_iter()
            .map(|id| {
                let up = results.ok_from(id);
                (id, up, restarts.get(&id).copied().unwrap_or(0))
            })
            .collect(),
    };
    let mut aggregated = AggregatedMetrics::default();
    for (id, response) in results.into_answered_ok() {
        if let Some(ContentType::WorkerMetrics(worker)) =
            response.content.and_then(|content| content.content_type)
        {
            metrics::merge(&mut aggregated, id, worker, options.workers);
        }
    }
    metrics::add_main(&mut aggregated, &main.state(), &facts);
    Ok(aggregated)
}
