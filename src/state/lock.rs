//! The lock on an instance's state directory.
//!
//! Each instance keeps its stores under
//! `<state_dir>/<application_id>/<instance_id>/`, and holds an exclusive
//! lock on the `.lock` file there for as long as it runs, as Kafka Streams
//! locks its application's state directory (`StateDirectory.lockStateDirectory`).
//! A second process with the same state directory and instance id fails at
//! start with [`StateError::InUse`] instead of opening the same RocksDB
//! stores and corrupting them. The lock is the operating system's (`flock`),
//! so it goes with the process, however it ends: a `kill -9` leaves no stale
//! lock behind. The file also names the holder's pid, for the error.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{StateError, StateResult};

/// The lock file's name inside the instance's state directory.
const LOCK_FILE: &str = ".lock";

/// Held while the instance runs; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct StateDirLock {
    _file: File,
}

impl StateDirLock {
    /// Creates `dir` if needed and locks it, or says which process holds it.
    pub(crate) fn acquire(dir: &Path) -> StateResult<StateDirLock> {
        let io = |path: PathBuf| move |source| StateError::Io { path, source };
        std::fs::create_dir_all(dir).map_err(io(dir.to_path_buf()))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(path.clone()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                // The holder's pid is a courtesy for the message: unreadable, it is left out.
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim().parse::<u32>() {
                    Ok(pid) => format!(" (pid {pid})"),
                    Err(_) => String::new(),
                };
                return Err(StateError::InUse { path: dir.to_path_buf(), holder });
            }
            Err(TryLockError::Error(source)) => return Err(StateError::Io { path, source }),
        }
        file.set_len(0).map_err(io(path.clone()))?;
        file.seek(SeekFrom::Start(0)).map_err(io(path.clone()))?;
        writeln!(file, "{}", std::process::id()).map_err(io(path))?;
        Ok(StateDirLock { _file: file })
    }

    /// Moves the stores of the layout before instance directories
    /// (`<app_dir>/<task>/` and `<app_dir>/global/`, where `app_dir` is the
    /// parent of `instance_dir`) into `instance_dir`, which this lock holds,
    /// so an upgraded instance keeps its local state instead of restoring
    /// it all. Returns how many directories moved.
    pub(crate) fn adopt_legacy_stores(&self, instance_dir: &Path) -> StateResult<usize> {
        let Some(app_dir) = instance_dir.parent() else { return Ok(0) };
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StateError::Io { path, source }
        };
        let mut moved = 0;
        for entry in std::fs::read_dir(app_dir).map_err(io(app_dir))? {
            let entry = entry.map_err(io(app_dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let is_task = name.split_once('_').is_some_and(|(a, b)| {
                !a.is_empty() && !b.is_empty() && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
            });
            // An instance directory (it has a lock file) is never a store,
            // whatever the instance is called.
            let path = entry.path();
            if !(is_task || name == "global") || !path.is_dir() || path == instance_dir || path.join(LOCK_FILE).exists()
            {
                continue;
            }
            let target = instance_dir.join(name);
            if target.exists() {
                continue;
            }
            std::fs::rename(entry.path(), &target).map_err(io(&target))?;
            moved += 1;
        }
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::process::Command;

    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let instance = dir.path().join("app").join("pod-0");
        let first = StateDirLock::acquire(&instance).unwrap();
        let err = StateDirLock::acquire(&instance).unwrap_err();
        assert!(matches!(err, StateError::InUse { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains(&format!("(pid {})", std::process::id())), "{text}");
        assert!(text.contains("give each its own `state_dir`"), "{text}");
        // Another instance id is another directory.
        let _other = StateDirLock::acquire(&dir.path().join("app").join("pod-1")).unwrap();
        drop(first);
        let _again = StateDirLock::acquire(&instance).unwrap();
    }

    #[test]
    fn stores_of_the_layout_without_instance_directories_move_into_the_instance() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        for legacy in ["0_0/counts", "1_12/joined", "global/products"] {
            std::fs::create_dir_all(app.join(legacy)).unwrap();
            std::fs::write(app.join(legacy).join("CURRENT"), legacy).unwrap();
        }
        std::fs::create_dir_all(app.join("pod-1").join("0_1")).unwrap(); // another instance's
                                                                         // An instance whose id looks like a task: its directory has a lock file.
        drop(StateDirLock::acquire(&app.join("2_2")).unwrap());
        let instance = app.join("pod-0");
        let lock = StateDirLock::acquire(&instance).unwrap();
        assert_eq!(lock.adopt_legacy_stores(&instance).unwrap(), 3);
        for legacy in ["0_0/counts", "1_12/joined", "global/products"] {
            assert_eq!(std::fs::read_to_string(instance.join(legacy).join("CURRENT")).unwrap(), legacy);
            assert!(!app.join(legacy).exists());
        }
        assert!(app.join("pod-1").join("0_1").exists(), "another instance's directory stays");
        assert!(app.join("2_2").join(LOCK_FILE).exists(), "an instance called 2_2 stays");
        assert_eq!(lock.adopt_legacy_stores(&instance).unwrap(), 0);
    }

    #[test]
    fn another_process_cannot_take_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let _held = StateDirLock::acquire(dir.path()).unwrap();
        // flock(1) in another process: it must fail to take the lock at once.
        let lock = dir.path().join(LOCK_FILE);
        let Ok(status) = Command::new("flock").args(["--nonblock", "--exclusive"]).arg(&lock).arg("true").status()
        else {
            eprintln!("flock(1) is not installed; skipping");
            return;
        };
        assert!(!status.success(), "another process took the lock on {}", lock.display());
    }
}
