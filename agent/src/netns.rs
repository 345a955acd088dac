//! Network namespaces by name, as `ip netns` keeps them: a directory
//! (`/var/run/netns`) of files, each a bind mount of a namespace.
//!
//! The agent watches another namespace through an rtnetlink socket created
//! inside it: a socket stays in the namespace it was created in, whatever
//! the creating thread does next. So a short-lived thread enters the
//! namespace (setns, which needs CAP_SYS_ADMIN), creates the socket, goes
//! back, and ends; the rest of the agent never changes namespace.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// statfs magic of nsfs: a file of this type is a namespace.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// A namespace's identity: its nsfs inode. Two names (or a name and
/// `/proc/self/ns/net`) with the same id are one namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NsId {
    dev: u64,
    ino: u64,
}

impl NsId {
    /// The namespace's inode, as `/proc/PID/ns/net` names it (`net:[INO]`).
    pub fn ino(self) -> u64 {
        self.ino
    }
}

/// What a scan of the directory found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Named namespaces, by name (sorted).
    pub found: Vec<(String, NsId)>,
    /// Files that are not (yet) namespaces: `ip netns add` creates the file
    /// first and mounts the namespace on it a moment later.
    pub unmounted: usize,
}

/// An open named namespace.
#[derive(Debug)]
pub struct Namespace {
    name: String,
    file: File,
    id: NsId,
}

/// The agent's own network namespace.
pub fn own_id() -> io::Result<NsId> {
    id_of(&std::fs::metadata("/proc/self/ns/net")?)
}

fn id_of(meta: &std::fs::Metadata) -> io::Result<NsId> {
    Ok(NsId {
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

/// Whether `file` is a namespace (nsfs) rather than a plain file.
fn is_nsfs(file: &File) -> bool {
    // SAFETY: fstatfs writes a statfs struct for a valid fd.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) };
    rc == 0 && st.f_type as i64 == NSFS_MAGIC
}

/// Lists the named namespaces in `dir`. A missing directory holds none.
pub fn scan(dir: &Path) -> Scan {
    let mut scan = Scan::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return scan;
    };
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        match Namespace::open(dir, &name) {
            Ok(ns) => scan.found.push((name, ns.id)),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => scan.unmounted += 1,
            Err(_) => {}
        }
    }
    scan.found.sort();
    scan
}

impl Namespace {
    /// Opens the namespace named `name` in `dir`. InvalidData: the file is
    /// there but is not (yet) a namespace.
    pub fn open(dir: &Path, name: &str) -> io::Result<Namespace> {
        let path: PathBuf = dir.join(name);
        let file = File::open(&path)?;
        if !is_nsfs(&file) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not a network namespace", path.display()),
            ));
        }
        let id = id_of(&file.metadata()?)?;
        Ok(Namespace {
            name: name.to_string(),
            file,
            id,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> NsId {
        self.id
    }

    /// Runs `f` on a thread of its own inside this namespace. The thread
    /// returns to the agent's namespace afterwards and ends; sockets `f`
    /// creates stay in this namespace.
    pub fn run_inside<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        std::thread::scope(|s| {
            s.spawn(|| {
                let home = File::open("/proc/thread-self/ns/net")?;
                setns(&self.file).map_err(|e| hint(e, &self.name))?;
                let out = f();
                // The thread ends next, so a failure here strands nothing;
                // going back keeps the thread's last moments unsurprising.
                let _ = setns(&home);
                Ok(out)
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the namespace thread panicked")))
        })
    }
}

fn setns(file: &File) -> io::Result<()> {
    // SAFETY: setns with a valid namespace fd; affects only this thread.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn hint(e: io::Error, name: &str) -> io::Error {
    if e.raw_os_error() == Some(libc::EPERM) {
        io::Error::new(
            e.kind(),
            format!("entering network namespace {name} needs CAP_SYS_ADMIN ({e})"),
        )
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_files_are_not_namespaces_and_missing_dirs_hold_none() {
        let dir = std::env::temp_dir().join(format!("routewatch-netns-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(scan(&dir).found.is_empty());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("half-made"), b"").unwrap();
        let s = scan(&dir);
        assert!(s.found.is_empty());
        assert_eq!(s.unmounted, 1);
        let e = Namespace::open(&dir, "half-made").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_own_namespace_has_an_id_and_can_be_entered() {
        let own = own_id().unwrap();
        let ns = Namespace {
            name: "self".into(),
            file: File::open("/proc/self/ns/net").unwrap(),
            id: own,
        };
        assert!(is_nsfs(&ns.file));
        // Entering one's own namespace needs CAP_SYS_ADMIN as well; as root
        // it works and the closure runs.
        if let Ok(v) = ns.run_inside(|| 7) {
            assert_eq!(v, 7);
        }
    }
}
