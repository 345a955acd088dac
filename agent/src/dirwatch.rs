//! Wake-ups when a directory's entries change (inotify), so that named
//! namespaces are noticed as they come and go rather than at the next
//! periodic scan.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use tokio::io::unix::AsyncFd;

/// An inotify watch on one directory. A directory that does not exist yet
/// (no `ip netns add` has run) is watched once it does: call
/// [`DirWatch::retry`] on every periodic scan.
pub struct DirWatch {
    dir: PathBuf,
    fd: Option<AsyncFd<OwnedFd>>,
}

impl DirWatch {
    pub fn new(dir: &Path) -> DirWatch {
        let mut watch = DirWatch {
            dir: dir.to_path_buf(),
            fd: None,
        };
        watch.retry();
        watch
    }

    /// Starts watching if not watching yet.
    pub fn retry(&mut self) {
        if self.fd.is_none() {
            self.fd = add_watch(&self.dir).ok();
        }
    }

    /// Waits until an entry is created, deleted or renamed (forever while
    /// there is no watch).
    pub async fn changed(&mut self) {
        let Some(fd) = self.fd.as_ref() else {
            return std::future::pending().await;
        };
        let mut buf = [0u8; 4096];
        let mut gone = false;
        match fd.readable().await {
            Ok(mut guard) => {
                // Drain everything queued; one scan covers it all.
                while let Ok(Ok(n)) = guard.try_io(|fd| read(fd.get_ref(), &mut buf)) {
                    if n == 0 {
                        break;
                    }
                    gone |= ignored(&buf[..n]);
                }
            }
            Err(_) => gone = true,
        }
        if gone {
            // The directory itself went away; watch it again once it is back.
            self.fd = None;
        }
    }
}

fn add_watch(dir: &Path) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: plain syscalls; the fd is owned from here on.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mask = libc::IN_CREATE
        | libc::IN_DELETE
        | libc::IN_MOVED_FROM
        | libc::IN_MOVED_TO
        | libc::IN_DELETE_SELF
        | libc::IN_MOVE_SELF
        | libc::IN_ONLYDIR;
    // SAFETY: a valid inotify fd and a NUL-terminated path.
    if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), mask) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the fd is owned by the AsyncFd from here on and closed only
    // when it is dropped.
    unsafe { AsyncFd::register(fd) }.map_err(Into::into)
}

fn read(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: reading into a buffer of the length passed.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Whether the events in `buf` say the watch itself is gone.
fn ignored(buf: &[u8]) -> bool {
    // struct inotify_event { int wd; u32 mask; u32 cookie; u32 len; char name[len]; }
    let mut at = 0;
    while at + 16 <= buf.len() {
        let mask = u32::from_ne_bytes(buf[at + 4..at + 8].try_into().expect("4 bytes"));
        let len = u32::from_ne_bytes(buf[at + 12..at + 16].try_into().expect("4 bytes")) as usize;
        if mask & (libc::IN_IGNORED | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF) != 0 {
            return true;
        }
        at += 16 + len;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn creating_and_deleting_an_entry_wakes_the_watch() {
        let dir = std::env::temp_dir().join(format!("routewatch-dirwatch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut watch = DirWatch::new(&dir);
        assert!(watch.fd.is_none(), "nothing to watch yet");
        std::fs::create_dir_all(&dir).unwrap();
        watch.retry();
        std::fs::write(dir.join("a"), b"").unwrap();
        tokio::time::timeout(Duration::from_secs(5), watch.changed())
            .await
            .expect("woken by the create");
        std::fs::remove_file(dir.join("a")).unwrap();
        tokio::time::timeout(Duration::from_secs(5), watch.changed())
            .await
            .expect("woken by the delete");
        std::fs::remove_dir(&dir).unwrap();
        tokio::time::timeout(Duration::from_secs(5), watch.changed())
            .await
            .expect("woken by the directory's removal");
        assert!(watch.fd.is_none());
    }
}
