//! Output locations `check` can judge without writing: each must be creatable where the
//! gateway will create it (the sink's files, the spool directory, the dedup journal). A
//! location under a regular file, or a directory where a file goes, fails at `serve`'s
//! start; `check` names it first, so a pre-start check (the systemd unit's `ExecStartPre`)
//! stops a restart loop instead of passing it. Permissions are not judged: `check` may run as
//! another user than `serve`.

use std::path::Path;

/// `(key, problem)` for a file at `path` the gateway creates (its directory too, when
/// missing): it must not be a directory, and its nearest existing ancestor must be one.
pub fn file_problem(key: &str, path: &Path) -> Option<(String, String)> {
    if path.is_dir() {
        return Some((key.to_owned(), format!("{} is a directory", path.display())));
    }
    path.parent()
        .and_then(|dir| dir_problem(key, dir))
        .map(|(k, _)| {
            (
                k,
                format!("{} cannot be created: {}", path.display(), blocked(path)),
            )
        })
}

/// `(key, problem)` for a directory at `dir` the gateway creates when missing: `dir` and its
/// nearest existing ancestor must be directories.
pub fn dir_problem(key: &str, dir: &Path) -> Option<(String, String)> {
    let existing = dir
        .ancestors()
        .find(|a| a.exists() || a.as_os_str().is_empty())?;
    if existing.as_os_str().is_empty() || existing.is_dir() {
        return None;
    }
    Some((
        key.to_owned(),
        format!("{} cannot be created: {}", dir.display(), blocked(dir)),
    ))
}

/// Why `path` cannot be created: the ancestor that is not a directory.
fn blocked(path: &Path) -> String {
    match path.ancestors().skip(1).find(|a| a.exists() && !a.is_dir()) {
        Some(file) => format!("{} is a file, not a directory", file.display()),
        None => "a part of it is not a directory".to_owned(),
    }
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
        // Not creatable.
        let (key, why) = file_problem("sink.path", &file.join("events.jsonl")).unwrap();
        assert_eq!(key, "sink.path");
        assert!(why.contains("is a file, not a directory"), "{why}");
        assert!(dir_problem("spool.dir", &file.join("spool")).is_some());
        assert!(dir_problem("spool.dir", &file).is_some());
        let (_, why) = file_problem("sink.path", dir.path()).unwrap();
        assert!(why.contains("is a directory"), "{why}");
    }
}
