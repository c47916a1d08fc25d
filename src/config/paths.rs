//! Output locations `check` can judge without writing: each must be creatable where the
//! gateway will create it (the sink's files, the spool directory, the dedup journal). A
//! location under a regular file, a directory where a file goes, or a place the user cannot
//! write fails at `serve`'s start; `check` names it first, so a pre-start check (the systemd
//! unit's `ExecStartPre`, run as the service's user) stops a restart loop instead of passing
//! it. Permissions are judged for the user `check` runs as.

use std::path::Path;

/// `(key, problem)` for a file at `path` the gateway creates (its directory too, when
/// missing) or appends to: it must not be a directory, an existing one must be writable, and
/// its nearest existing ancestor must be a directory this user can create entries in.
pub fn file_problem(key: &str, path: &Path) -> Option<(String, String)> {
    if path.is_dir() {
        return Some((key.to_owned(), format!("{} is a directory", path.display())));
    }
    if path.exists() {
        return (!writable(path, false)).then(|| {
            (
                key.to_owned(),
                format!("{} is not writable by this user", path.display()),
            )
        });
    }
    path.parent()
        .and_then(|dir| dir_problem(key, dir))
        .map(|(k, why)| (k, format!("{} cannot be created: {why}", path.display())))
}

/// `(key, problem)` for a directory at `dir` the gateway creates when missing and writes in:
/// `dir` and its nearest existing ancestor must be directories this user can write in.
pub fn dir_problem(key: &str, dir: &Path) -> Option<(String, String)> {
    let existing = dir
        .ancestors()
        .find(|a| a.exists() || a.as_os_str().is_empty())?;
    if existing.as_os_str().is_empty() {
        return None;
    }
    let why = if !existing.is_dir() {
        format!("{} is a file, not a directory", existing.display())
    } else if !writable(existing, true) {
        format!("{} is not writable by this user", existing.display())
    } else {
        return None;
    };
    Some((
        key.to_owned(),
        format!("{} cannot be created or written in: {why}", dir.display()),
    ))
}

/// [`dir_problem`] for the spool's directory, whose files (segments, `acked`, the spare) the
/// gateway opens for writing when it starts: an existing one this user cannot write is named.
pub fn spool_dir_problem(key: &str, dir: &Path) -> Option<(String, String)> {
    if let Some(problem) = dir_problem(key, dir) {
        return Some(problem);
    }
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.is_file() && !writable(p, false))
        .map(|p| {
            (
                key.to_owned(),
                format!("{} is not writable by this user", p.display()),
            )
        })
}

/// True when this user may write `path` (and, for a directory, enter it).
fn writable(path: &Path, dir: bool) -> bool {
    use rustix::fs::Access;
    let wanted = if dir {
        Access::WRITE_OK | Access::EXEC_OK
    } else {
        Access::WRITE_OK
    };
    rustix::fs::access(path, wanted).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_under_a_file_or_files_that_are_directories_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, b"x").unwrap();
        // Creatable: missing directories are made.
        assert_eq!(
            file_problem("sink.path", &dir.path().join("a/b/events.jsonl")),
            None
        );
        assert_eq!(dir_problem("spool.dir", &dir.path().join("a/b")), None);
        assert_eq!(file_problem("sink.path", Path::new("events.jsonl")), None);
        assert_eq!(file_problem("sink.path", &file), None);
        // Not creatable.
        let (key, why) = file_problem("sink.path", &file.join("events.jsonl")).unwrap();
        assert_eq!(key, "sink.path");
        assert!(why.contains("is a file, not a directory"), "{why}");
        assert!(dir_problem("spool.dir", &file.join("spool")).is_some());
        assert!(dir_problem("spool.dir", &file).is_some());
        let (_, why) = file_problem("sink.path", dir.path()).unwrap();
        assert!(why.contains("is a directory"), "{why}");
    }

    /// Judged for the user running the check. Root may write almost anywhere, so `/proc/self`,
    /// where not even root may create entries, stands in for a directory the user cannot write.
    #[test]
    fn a_place_this_user_cannot_write_is_named() {
        let read_only = Path::new("/proc/self");
        let (_, why) = dir_problem("spool.dir", &read_only.join("spool")).unwrap();
        assert!(why.contains("not writable by this user"), "{why}");
        let (_, why) = file_problem("sink.path", &read_only.join("x/events.jsonl")).unwrap();
        assert!(why.contains("not writable by this user"), "{why}");
    }
}
