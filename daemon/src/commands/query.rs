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
    let results = main.fan_out(request, Some(main.worker_timeout())).await;
    if let Err(failures) = results.failures() {
        let _ = answers.send(Response::failure(format!(
            "some workers could not answer: {failures}"
        )));
        return;
    }
    let mut aggregated = AggregatedMetrics::default();
    for (id, response) in results.into_answered_ok() {
        if let Some(ContentType::WorkerMetrics(worker)) =
            response.content.and_then(|content| content.content_type)
        {
            metrics::merge(&mut aggregated, id, worker, options.workers);
        }
    }
    metrics::add_main(&mut aggregated, &main.state());
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
