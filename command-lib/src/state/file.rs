//! State files: the configuration written as requests, one JSON record each.
//!
//! The format is Sozu's: every record is the JSON form of a `WorkerRequest`
//! (ids `SAVE-0`, `SAVE-1`, …, which readers ignore) followed by a newline
//! and a NUL byte. Records come in the order of
//! [`ConfigState::generate_requests`], so loading them one by one into an
//! empty state never refers to something not yet defined.
//!
//! Saving is atomic: the records go to a temporary file in the same folder,
//! which is flushed to disk and then renamed over the target, so a crash
//! leaves either the old file or the new one, never a mix. Loading reports
//! every record it could not use, with its position and the reason, and keeps
//! the others.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{ConfigState, StateError};
use crate::proto::command::{Request, WorkerRequest};

/// The bytes after every record.
pub const RECORD_SEPARATOR: &[u8] = b"\n\0";

/// A record that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record {number} (byte {offset}): {reason}")]
pub struct RecordError {
    /// 1-based position of the record in the file.
    pub number: usize,
    /// Byte offset of the record's first byte in the file.
    pub offset: usize,
    /// Why it could not be used.
    pub reason: String,
}

/// A record read from a state file.
#[derive(Debug, Clone, PartialEq)]
pub struct StateRecord {
    /// 1-based position of the record in the file.
    pub number: usize,
    /// Byte offset of the record's first byte in the file.
    pub offset: usize,
    /// The request it holds (boxed: requests are large, and records are
    /// moved around).
    pub request: Box<Request>,
}

/// The outcome of [`load`]: how many records were applied, and the others.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Records read and applied.
    pub applied: usize,
    /// Records that could not be read or were refused by the state.
    pub errors: Vec<RecordError>,
}

/// Errors of a whole-file operation.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    /// The file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "could not write".
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The system's reason.
        source: io::Error,
    },
    /// The path names something that is not a regular file (a FIFO, a
    /// device, a folder, a socket): reading it could block or never end.
    #[error("{path} is {kind}, not a regular file: a state file must be a regular file")]
    NotARegularFile {
        /// The path given.
        path: PathBuf,
        /// What it is instead, e.g. "a FIFO".
        kind: &'static str,
    },
    /// The file is larger than the configured limit.
    #[error("{path} is larger than {max} bytes (max_state_file_size): not read")]
    TooLarge {
        /// The file concerned.
        path: PathBuf,
        /// The limit, bytes.
        max: u64,
    },
}

/// Reads the state file at `path`, which must be a regular file of at most
/// `max_size` bytes.
///
/// The file is opened without blocking (opening a FIFO for reading would
/// otherwise wait for a writer) and checked to be a regular file before a
/// byte is read; the size limit holds while reading, so a file that grows
/// meanwhile is refused too instead of filling the memory.
pub fn read_bounded(path: &Path, max_size: u64) -> Result<Vec<u8>, StateFileError> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let io_error = |source| StateFileError::Io {
        action: "could not read",
        path: path.to_path_buf(),
        source,
    };
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io_error)?;
    let metadata = file.metadata().map_err(io_error)?;
    let file_type = metadata.file_type();
    if !file_type.is_file() {
        let kind = if file_type.is_dir() {
            "a folder"
        } else if file_type.is_fifo() {
            "a FIFO"
        } else if file_type.is_socket() {
            "a socket"
        } else if file_type.is_char_device() {
            "a character device"
        } else if file_type.is_block_device() {
            "a block device"
        } else {
            "not a file"
        };
        return Err(StateFileError::NotARegularFile {
            path: path.to_path_buf(),
            kind,
        });
    }
    let too_large = || StateFileError::TooLarge {
        path: path.to_path_buf(),
        max: max_size,
    };
    if metadata.len() > max_size {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.take(max_size.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > max_size {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Serializes the whole state as state file bytes.
pub fn to_bytes(state: &ConfigState) -> Vec<u8> {
    let requests = state.generate_requests();
    let mut bytes = Vec::with_capacity(requests.len() * 512);
    for (index, request) in requests.into_iter().enumerate() {
        let record = WorkerRequest {
            id: format!("SAVE-{index}"),
            content: request,
        };
        // Writing JSON into a Vec cannot fail: every generated type
        // serializes (maps have string keys, no floats).
        serde_json::to_writer(&mut bytes, &record).expect("state records always serialize");
        bytes.extend_from_slice(RECORD_SEPARATOR);
    }
    bytes
}

/// Writes the state to `path` atomically and returns the number of records.
pub fn save(state: &ConfigState, path: &Path) -> Result<usize, StateFileError> {
    let bytes = to_bytes(state);
    let records = bytes
        .split(|byte| *byte == 0)
        .filter(|r| !r.is_empty())
        .count();
    write_atomically(path, &bytes)?;
    Ok(records)
}

/// The mode of a new state file: read and write for its owner only.
pub const PRIVATE_MODE: u32 = 0o600;

/// Writes `bytes` to `path` through a temporary file, fsync and rename.
///
/// The file is written with mode 0600 whatever the umask (it may hold
/// private keys), or with the mode of the file it replaces when that one is
/// tighter (`0400` stays `0400`; `0644` becomes `0600`).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StateFileError> {
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned());
    let Some(file_name) = file_name else {
        return Err(StateFileError::Io {
            action: "could not write",
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"),
        });
    };
    let temporary = folder.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let io_error = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| StateFileError::Io {
            action,
            path,
            source,
        }
    };
    let result = (|| {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        // State files hold private keys: 0600 whatever the umask, or the
        // tighter mode of the file being replaced.
        let mode = match fs::metadata(path) {
            Ok(existing) => existing.permissions().mode() & PRIVATE_MODE,
            Err(_) => PRIVATE_MODE,
        };
        // A temporary file left by a crash is removed (not followed, if it
        // is a link); then the new one is created where nothing is, so a
        // link planted meanwhile makes the save fail instead of writing
        // through it.
        let _ = fs::remove_file(&temporary);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temporary)
            .map_err(io_error("could not create", &temporary))?;
        // The umask may have removed bits of `mode`, never added any; the
        // mode is set exactly either way.
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_error("could not set the mode of", &temporary))?;
        file.write_all(bytes)
            .map_err(io_error("could not write", &temporary))?;
        file.sync_all()
            .map_err(io_error("could not flush to disk", &temporary))?;
        fs::rename(&temporary, path).map_err(io_error("could not rename into", path))?;
        // Make the rename itself durable.
        if let Ok(directory) = File::open(&folder) {
            let _ = directory.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

/// Splits state file bytes into records and decodes each one.
///
/// Leading and trailing whitespace around a record is ignored, and so are
/// empty records, so files edited by hand or missing the final separator
/// still load.
pub fn parse_records(bytes: &[u8]) -> Vec<Result<StateRecord, RecordError>> {
    records(bytes).collect()
}

/// The records of state file bytes, decoded one at a time as they are
/// consumed (see [`parse_records`]).
pub fn records(bytes: &[u8]) -> impl Iterator<Item = Result<StateRecord, RecordError>> + '_ {
    let mut offset = 0;
    let mut number = 0;
    bytes.split(|byte| *byte == 0).filter_map(move |chunk| {
        let chunk_offset = offset;
        offset += chunk.len() + 1;
        let leading = chunk.iter().take_while(|b| b.is_ascii_whitespace()).count();
        let record = chunk[leading..].trim_ascii_end();
        if record.is_empty() {
            return None;
        }
        number += 1;
        let offset = chunk_offset + leading;
        let error = |reason: String| RecordError {
            number,
            offset,
            reason,
        };
        Some(
            serde_json::from_slice::<Box<WorkerRequest>>(record)
                .map_err(|e| error(format!("not a valid request record: {e}")))
                .and_then(|worker_request| {
                    if worker_request.content.request_type.is_none() {
                        return Err(error("the record holds an empty request".to_owned()));
                    }
                    // Reuse the allocation: the record keeps the request.
                    let WorkerRequest { content, .. } = *worker_request;
                    Ok(StateRecord {
                        number,
                        offset,
                        request: Box::new(content),
                    })
                }),
        )
    })
}

/// How many records [`records`] would give for these bytes (valid or not),
/// counted without decoding them.
pub fn record_count(bytes: &[u8]) -> usize {
    bytes
        .split(|byte| *byte == 0)
        .filter(|chunk| !chunk.trim_ascii().is_empty())
        .count()
}

/// Reads the state file at `path` into records (see [`read_bounded`]).
pub fn read_records(
    path: &Path,
    max_size: u64,
) -> Result<Vec<Result<StateRecord, RecordError>>, StateFileError> {
    Ok(parse_records(&read_bounded(path, max_size)?))
}

/// Applies every record of `bytes` to `state`, keeping going past bad ones.
pub fn load(state: &mut ConfigState, bytes: &[u8]) -> LoadReport {
    let mut report = LoadReport::default();
    for record in records(bytes) {
        match record {
            Ok(record) => match state.dispatch(&record.request) {
                Ok(()) => report.applied += 1,
                Err(error) => report.errors.push(refused(&record, &error)),
            },
            Err(error) => report.errors.push(error),
        }
    }
    report
}

/// The record error for a request the state refused.
pub fn refused(record: &StateRecord, error: &StateError) -> RecordError {
    RecordError {
        number: record.number,
        offset: record.offset,
        reason: format!("{} refused: {error}", record.request.kind_name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_files_are_private_whatever_the_umask_and_keep_a_tighter_mode() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("state.json");
        // SAFETY: umask has no memory-safety requirement; the previous
        // mask is put back below.
        let previous = unsafe { libc::umask(0o002) };
        write_atomically(&path, b"one").unwrap();
        assert_eq!(mode(&path), 0o600);
        // A looser file is tightened, a tighter one stays as it is.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(mode(&path), 0o600);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        write_atomically(&path, b"three").unwrap();
        assert_eq!(mode(&path), 0o400);
        assert_eq!(fs::read(&path).unwrap(), b"three");
        // A temporary file planted as a link is not written through.
        let target = folder.path().join("target");
        fs::write(&target, b"untouched").unwrap();
        let other = folder.path().join("other.json");
        let temporary = folder
            .path()
            .join(format!(".other.json.{}.tmp", std::process::id()));
        std::os::unix::fs::symlink(&target, &temporary).unwrap();
        write_atomically(&other, b"new").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"untouched");
        assert_eq!(fs::read(&other).unwrap(), b"new");
        unsafe { libc::umask(previous) };
    }

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let folder = tempfile::tempdir().unwrap();
        let regular = folder.path().join("state.json");
        fs::write(&regular, b"0123456789").unwrap();
        assert_eq!(read_bounded(&regular, 10).unwrap(), b"0123456789");
        let error = read_bounded(&regular, 9).unwrap_err();
        assert!(
            matches!(error, StateFileError::TooLarge { max: 9, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("max_state_file_size"), "{error}");

        // A FIFO nobody writes to: refused at once, not waited on.
        let fifo = folder.path().join("fifo");
        let name = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        let error = read_bounded(&fifo, 1 << 20).unwrap_err();
        assert!(error.to_string().contains("a FIFO"), "{error}");

        // A device that never ends, and a folder.
        let error = read_bounded(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert!(error.to_string().contains("character device"), "{error}");
        let error = read_bounded(folder.path(), 1 << 20).unwrap_err();
        assert!(error.to_string().contains("a folder"), "{error}");
        assert!(matches!(
            read_bounded(&folder.path().join("missing"), 10),
            Err(StateFileError::Io { .. })
        ));
    }

    #[test]
    fn garbage_records_are_reported_and_the_rest_loads() {
        let bytes = b"{\"id\":\"SAVE-0\",\"content\":{\"request_type\":{\"ADD_CLUSTER\":{\"cluster_id\":\"a\",\"sticky_session\":false,\"https_redirect\":false,\"load_balancing\":0}}}}\n\0not json\n\0{\"id\":\"x\",\"content\":{}}\n\0";
        assert_eq!(record_count(bytes), 3);
        let mut state = ConfigState::new();
        let report = load(&mut state, bytes);
        assert_eq!(report.applied, 1);
        assert_eq!(report.errors.len(), 2);
        assert_eq!(report.errors[0].number, 2);
        assert!(
            report.errors[0]
                .reason
                .contains("not a valid request record")
        );
        assert_eq!(report.errors[1].number, 3);
        assert!(report.errors[1].reason.contains("empty request"));
        assert!(state.clusters.contains_key("a"));
    }

    #[test]
    fn refused_records_name_the_request_and_reason() {
        let bytes =
            b"{\"id\":\"SAVE-0\",\"content\":{\"request_type\":{\"REMOVE_CLUSTER\":\"nope\"}}}\n\0";
        let report = load(&mut ConfigState::new(), bytes);
        assert_eq!(report.applied, 0);
        let message = report.errors[0].to_string();
        assert!(message.contains("record 1"), "{message}");
        assert!(message.contains("REMOVE_CLUSTER"), "{message}");
        assert!(message.contains("nope"), "{message}");
    }

    #[test]
    fn save_replaces_the_file_atomically() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("state.txt");
        fs::write(&path, b"old").unwrap();
        let mut state = ConfigState::new();
        state
            .dispatch(
                &crate::proto::command::request::RequestType::AddCluster(
                    crate::proto::command::Cluster {
                        cluster_id: "a".into(),
                        ..Default::default()
                    },
                )
                .into(),
            )
            .unwrap();
        assert_eq!(save(&state, &path).unwrap(), 1);
        let written = fs::read(&path).unwrap();
        assert!(written.starts_with(b"{\"id\":\"SAVE-0\""));
        assert!(written.ends_with(RECORD_SEPARATOR));
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(folder.path()).unwrap().count(), 1);
    }

    #[test]
    fn saving_into_a_missing_folder_names_the_path() {
        let error = save(
            &ConfigState::new(),
            Path::new("/nonexistent-folder/x/state.txt"),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("/nonexistent-folder/x/"), "{error}");
    }
}
