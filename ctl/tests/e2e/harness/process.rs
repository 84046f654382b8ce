//! Processes of a daemon seen from outside: whether one is gone, the
//! children of a main process, every process a daemon runs, and the
//! cluster hashes each process holds.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use sozu_command::channel::CommandChannel;
use sozu_command::proto::command::{Request, request::RequestType, response_content::ContentType};

/// The fields of `/proc/PID/stat` after the command name (which may hold
/// spaces and parentheses): the state first, then the parent's pid.
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// Whether process `pid` is gone: no such process, or a zombie nobody
/// reaped yet (it runs no code any more).
pub fn gone(pid: i32) -> bool {
    stat_fields(pid).is_none_or(|fields| fields.first().is_some_and(|s| s == "Z" || s == "X"))
}

/// The live children of `parent` (a main process's workers).
pub fn children_of(parent: i32) -> Vec<i32> {
    all_pids()
        .filter(|&pid| {
            stat_fields(pid).is_some_and(|fields| {
                fields.get(1).and_then(|p| p.parse::<i32>().ok()) == Some(parent)
            }) && !gone(pid)
        })
        .collect()
}

/// The live processes running the `sozu` binary under test in `folder`
/// (a daemon's main process and its workers run there), whoever their
/// parent is now.
pub fn sozu_processes_in(folder: &Path) -> Vec<i32> {
    let binary = Path::new(env!("CARGO_BIN_EXE_sozu"));
    all_pids()
        .filter(|&pid| {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe"));
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"));
            exe.is_ok_and(|exe| exe == binary) && cwd.is_ok_and(|cwd| cwd == folder) && !gone(pid)
        })
        .collect()
}

fn all_pids() -> impl Iterator<Item = i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
}

/// The cluster hashes of the main process ("main") and of each worker, or
/// `None` when the daemon does not answer in full.
pub fn cluster_hashes(socket: &Path) -> Option<BTreeMap<String, BTreeMap<String, u64>>> {
    let mut channel = CommandChannel::connect(socket).ok()?;
    let request: Request = RequestType::QueryClustersHashes(Default::default()).into();
    let answer = channel
        .exchange(&request, Some(Duration::from_secs(30)), |_| {})
        .ok()?;
    let Some(ContentType::WorkerResponses(responses)) = answer.content.and_then(|c| c.content_type)
    else {
        return None;
    };
    responses
        .map
        .into_iter()
        .map(|(source, content)| match content.content_type {
            Some(ContentType::ClusterHashes(hashes)) => {
                Some((source, hashes.map.into_iter().collect()))
            }
            _ => None,
        })
        .collect()
}

/// Whether `workers` workers and the main process answered with the same
/// clusters.
pub fn hashes_agree(all: &BTreeMap<String, BTreeMap<String, u64>>, workers: usize) -> bool {
    let mut values = all.values();
    let first = values.next();
    all.len() == workers + 1 && values.all(|other| Some(other) == first)
}
