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
    /// A symbolic link (or a file where a folder should be) in a path that
    /// must not follow links: below the state directory.
    #[error(
        "{path} is a symbolic link or not a folder: links are not followed below the state directory"
    )]
    Link {
        /// The path up to the link.
        path: PathBuf,
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
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|source| StateFileError::Io {
            action: "could not read",
            path: path.to_path_buf(),
            source,
        })?;
    read_open(file, path, max_size)
}

/// Reads the state file at `relative` below the folder `root`, like
/// [`read_bounded`], without following any symbolic link below `root`
/// (`relative` comes from [`confine`]).
pub fn read_beneath(
    root: &Path,
    relative: &Path,
    max_size: u64,
) -> Result<Vec<u8>, StateFileError> {
    let path = root.join(relative);
    let (folder, name) = open_folder_beneath(root, relative)?;
    let file = open_at(
        &folder,
        name,
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_NOFOLLOW,
        0,
    )
    .map_err(|source| not_followed_or("could not read", &path, source))?;
    read_open(file, &path, max_size)
}

/// The checks and the bounded read of [`read_bounded`], on a file opened
/// (without blocking) from `path`.
fn read_open(file: File, path: &Path, max_size: u64) -> Result<Vec<u8>, StateFileError> {
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;
    let io_error = |source| StateFileError::Io {
        action: "could not read",
        path: path.to_path_buf(),
        source,
    };
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

/// The path below `root` that a client asked for with `requested`: an
/// absolute path inside `root`, or a path relative to it, made only of
/// plain names (no `..`). The error says why not. Nothing is looked up on
/// disk here: [`read_beneath`] and [`save_beneath`] open it without
/// following links.
pub fn confine(root: &Path, requested: &Path) -> Result<PathBuf, String> {
    use std::path::Component;
    let relative = if requested.is_absolute() {
        requested.strip_prefix(root).map_err(|_| {
            format!(
                "{} is not inside the state directory {}",
                requested.display(),
                root.display()
            )
        })?
    } else {
        requested
    };
    let mut confined = PathBuf::new();
    for component in relative.components() {
        match component {
            Component::Normal(name) => confined.push(name),
            Component::CurDir => {}
            _ => {
                return Err(format!(
                    "{}: only plain names may follow the state directory {} (no '..')",
                    requested.display(),
                    root.display()
                ));
            }
        }
    }
    if confined.as_os_str().is_empty() {
        return Err(format!(
            "{} names the state directory itself, not a file in it",
            requested.display()
        ));
    }
    Ok(confined)
}

/// Opens the folder of `relative` below `root` one name at a time, none of
/// them followed if it is a symbolic link, and returns it with the file's
/// name.
fn open_folder_beneath<'a>(
    root: &Path,
    relative: &'a Path,
) -> Result<(File, &'a std::ffi::OsStr), StateFileError> {
    let path = root.join(relative);
    let name = relative.file_name().ok_or_else(|| StateFileError::Io {
        action: "could not open",
        path: path.clone(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"),
    })?;
    let mut folder = File::open(root).map_err(|source| StateFileError::Io {
        action: "could not open the state directory",
        path: root.to_path_buf(),
        source,
    })?;
    let mut reached = root.to_path_buf();
    for part in relative.parent().into_iter().flat_map(Path::components) {
        reached.push(part);
        folder = open_at(
            &folder,
            part.as_os_str(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )
        .map_err(|source| not_followed_or("could not open", &reached, source))?;
    }
    Ok((folder, name))
}

/// The error of an `O_NOFOLLOW` open: a link refused by name, else the
/// system's reason.
fn not_followed_or(action: &'static str, path: &Path, source: io::Error) -> StateFileError {
    match source.raw_os_error() {
        Some(libc::ELOOP | libc::ENOTDIR) => StateFileError::Link {
            path: path.to_path_buf(),
        },
        _ => StateFileError::Io {
            action,
            path: path.to_path_buf(),
            source,
        },
    }
}

/// `openat(2)` relative to `folder`, close-on-exec.
fn open_at(folder: &File, name: &std::ffi::OsStr, flags: i32, mode: u32) -> io::Result<File> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let name = c_name(name)?;
    // SAFETY: `name` is NUL-terminated and outlives the call; the folder
    // descriptor is open for the duration of the borrow.
    let fd = unsafe {
        libc::openat(
            folder.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just opened, owned by nothing else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

fn c_name(name: &std::ffi::OsStr) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the path"))
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
    let records = record_count(&bytes);
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
    let folder_path = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Some(name) = path.file_name() else {
        return Err(StateFileError::Io {
            action: "could not write",
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"),
        });
    };
    let folder = File::open(&folder_path).map_err(|source| StateFileError::Io {
        action: "could not open the folder of",
        path: path.to_path_buf(),
        source,
    })?;
    write_in(&folder, &folder_path, name, bytes)
}

/// Writes the state to `relative` below the folder `root` like [`save`],
/// without following any symbolic link below `root` (`relative` comes from
/// [`confine`]); a link at the file's own place is replaced, not followed.
pub fn save_beneath(
    state: &ConfigState,
    root: &Path,
    relative: &Path,
) -> Result<usize, StateFileError> {
    let bytes = to_bytes(state);
    let records = record_count(&bytes);
    let (folder, name) = open_folder_beneath(root, relative)?;
    let folder_path = root.join(relative.parent().unwrap_or(Path::new("")));
    write_in(&folder, &folder_path, name, &bytes)?;
    Ok(records)
}

/// [`write_atomically`] in an open folder: every step names the file
/// relative to the folder's descriptor, so a folder renamed or replaced by
/// a link meanwhile changes nothing.
fn write_in(
    folder: &File,
    folder_path: &Path,
    name: &std::ffi::OsStr,
    bytes: &[u8],
) -> Result<(), StateFileError> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::PermissionsExt;
    let path = folder_path.join(name);
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(name);
    temporary_name.push(format!(".{}.tmp", std::process::id()));
    let temporary = folder_path.join(&temporary_name);
    let io_error = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| StateFileError::Io {
            action,
            path,
            source,
        }
    };
    let c_path = |name: &std::ffi::OsStr| {
        c_name(name).map_err(io_error("could not write", &folder_path.join(name)))
    };
    let (c_final, c_temporary) = (c_path(name)?, c_path(&temporary_name)?);
    let fd = folder.as_raw_fd();
    // State files hold private keys: 0600 whatever the umask, or the
    // tighter mode of the file being replaced (a link there counts as
    // nothing: it is replaced, not followed).
    let mode = {
        // SAFETY: `stat` is plain data, filled by the call.
        let mut existing: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: a NUL-terminated name and a valid out pointer.
        let found = unsafe {
            libc::fstatat(
                fd,
                c_final.as_ptr(),
                &mut existing,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        } == 0;
        if found && existing.st_mode & libc::S_IFMT == libc::S_IFREG {
            existing.st_mode & PRIVATE_MODE
        } else {
            PRIVATE_MODE
        }
    };
    let unlink_temporary = || {
        // SAFETY: a NUL-terminated name; unlinkat never follows a link.
        unsafe { libc::unlinkat(fd, c_temporary.as_ptr(), 0) };
    };
    let result = (|| {
        // A temporary file left by a crash is removed; then the new one is
        // created where nothing is, so a link planted meanwhile makes the
        // save fail instead of writing through it.
        unlink_temporary();
        let mut file = open_at(
            folder,
            &temporary_name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
            mode,
        )
        .map_err(io_error("could not create", &temporary))?;
        // The umask may have removed bits of `mode`, never added any; the
        // mode is set exactly either way.
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_error("could not set the mode of", &temporary))?;
        file.write_all(bytes)
            .map_err(io_error("could not write", &temporary))?;
        file.sync_all()
            .map_err(io_error("could not flush to disk", &temporary))?;
        // SAFETY: NUL-terminated names relative to an open folder.
        let renamed =
            unsafe { libc::renameat(fd, c_temporary.as_ptr(), fd, c_final.as_ptr()) } == 0;
        if !renamed {
            return Err(io_error("could not rename into", &path)(
                io::Error::last_os_error(),
            ));
        }
        // Make the rename itself durable.
        let _ = folder.sync_all();
        Ok(())
    })();
    if result.is_err() {
        unlink_temporary();
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

/// Applies every record of `bytes` to `state`, keeping going past bad ones.
pub fn load(state: &mut ConfigState, bytes: &[u8]) -> LoadReport {
    load_checked(state, bytes, |_| Ok(()))
}

/// As [`load`], with one more check each record must pass before it is
/// applied (a daemon passes what its workers can enforce): a record it
/// refuses is reported with its position and the reason, and skipped.
pub fn load_checked(
    state: &mut ConfigState,
    bytes: &[u8],
    mut check: impl FnMut(&Request) -> Result<(), String>,
) -> LoadReport {
    let mut report = LoadReport::default();
    for record in records(bytes) {
        let applied = record.and_then(|record| {
            check(&record.request).map_err(|reason| RecordError {
                number: record.number,
                offset: record.offset,
                reason: format!("{} refused: {reason}", record.request.kind_name()),
            })?;
            apply_record(state, &record)
        });
        match applied {
            Ok(()) => report.applied += 1,
            Err(error) => report.errors.push(error),
        }
    }
    report
}

/// Applies one record on top of `state`: a record for something the state
/// holds already changes nothing when it is the same, and is refused saying
/// what differs when it is not (see [`ConfigState::existing`]); any other
/// record is dispatched.
pub fn apply_record(state: &mut ConfigState, record: &StateRecord) -> Result<(), RecordError> {
    match state.existing(&record.request) {
        Some(Ok(())) => Ok(()),
        Some(Err(difference)) => Err(RecordError {
            number: record.number,
            offset: record.offset,
            reason: format!("{} refused: {difference}", record.request.kind_name()),
        }),
        None => state
            .dispatch(&record.request)
            .map_err(|error| refused(record, &error)),
    }
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
    fn confined_paths_stay_below_their_folder_without_following_links() {
        let root = Path::new("/var/lib/sozu");
        assert_eq!(
            confine(root, Path::new("/var/lib/sozu/a/b.state")).unwrap(),
            Path::new("a/b.state")
        );
        assert_eq!(
            confine(root, Path::new("./b.state")).unwrap(),
            Path::new("b.state")
        );
        for refused in [
            "/etc/shadow",
            "/var/lib/sozu-other/x",
            "/var/lib/sozu/../x",
            "a/../../x",
            "/var/lib/sozu",
            ".",
        ] {
            assert!(confine(root, Path::new(refused)).is_err(), "{refused}");
        }

        let folder = tempfile::tempdir().unwrap();
        let root = folder.path().join("states");
        let outside = folder.path().join("outside");
        fs::create_dir_all(root.join("inner")).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), b"secret").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("out")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), root.join("secret")).unwrap();
        let state = ConfigState::new();

        save_beneath(&state, &root, Path::new("inner/ok.state")).unwrap();
        assert!(read_beneath(&root, Path::new("inner/ok.state"), 1 << 20).is_ok());
        // A link as a folder: refused, nothing written on the other side.
        let error = save_beneath(&state, &root, Path::new("out/x.state")).unwrap_err();
        assert!(matches!(error, StateFileError::Link { .. }), "{error}");
        assert!(!outside.join("x.state").exists());
        let error = read_beneath(&root, Path::new("out/secret"), 1 << 20).unwrap_err();
        assert!(matches!(error, StateFileError::Link { .. }), "{error}");
        // A link as the file: not read; replaced (not written through) by
        // a save.
        let error = read_beneath(&root, Path::new("secret"), 1 << 20).unwrap_err();
        assert!(matches!(error, StateFileError::Link { .. }), "{error}");
        save_beneath(&state, &root, Path::new("secret")).unwrap();
        assert_eq!(fs::read(outside.join("secret")).unwrap(), b"secret");
        assert!(
            !fs::symlink_metadata(root.join("secret"))
                .unwrap()
                .is_symlink()
        );
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
