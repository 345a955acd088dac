//! Locating (and building) the binaries under test.
//!
//! `routewatch-agent` and `routewatch` belong to other packages, so cargo
//! does not build them for this crate's tests. On first use the binaries are
//! built with `$CARGO build --bins -p routewatch-agent -p routewatch-client`
//! into the target directory this test binary lives in. Setting both
//! `ROUTEWATCH_AGENT_BIN` and `ROUTEWATCH_BIN` to paths skips the build and
//! uses those binaries instead.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Paths of the two binaries.
#[derive(Clone, Debug)]
pub struct Bins {
    pub agent: PathBuf,
    pub client: PathBuf,
}

/// Where cargo put this test binary: `target/[<triple>/]<profile>/deps/<test>`.
#[derive(Debug)]
struct Layout {
    target_dir: PathBuf,
    triple: Option<String>,
    profile: String,
    profile_dir: PathBuf,
}

fn layout() -> Result<Layout, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let deps = exe.parent().ok_or("test binary has no parent directory")?;
    // Test binaries live in <profile>/deps; tolerate running from <profile>.
    let profile_dir = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().ok_or("deps has no parent")?
    } else {
        deps
    };
    let profile = profile_dir
        .file_name()
        .ok_or("profile dir has no name")?
        .to_string_lossy()
        .into_owned();
    let parent = profile_dir.parent().ok_or("profile dir has no parent")?;
    let is_target_dir = |p: &Path| p.join("CACHEDIR.TAG").exists();
    let (target_dir, triple) =
        if !is_target_dir(parent) && parent.parent().is_some_and(is_target_dir) {
            (
                parent.parent().unwrap().to_path_buf(),
                Some(parent.file_name().unwrap().to_string_lossy().into_owned()),
            )
        } else {
            (parent.to_path_buf(), None)
        };
    Ok(Layout {
        target_dir,
        triple,
        profile,
        profile_dir: profile_dir.to_path_buf(),
    })
}

fn workspace_manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .join("Cargo.toml")
}

fn build() -> Result<Bins, String> {
    if let (Some(agent), Some(client)) = (
        std::env::var_os("ROUTEWATCH_AGENT_BIN"),
        std::env::var_os("ROUTEWATCH_BIN"),
    ) {
        return Ok(Bins {
            agent: agent.into(),
            client: client.into(),
        });
    }
    let layout = layout()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.arg("build")
        .arg("--bins")
        .arg("-p")
        .arg("routewatch-agent")
        .arg("-p")
        .arg("routewatch-client")
        .arg("--manifest-path")
        .arg(workspace_manifest())
        .arg("--target-dir")
        .arg(&layout.target_dir);
    match layout.profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.arg("--profile").arg(other);
        }
    }
    if let Some(triple) = &layout.triple {
        cmd.arg("--target").arg(triple);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd))?;
    if !out.status.success() {
        return Err(format!(
            "building the binaries under test failed ({}): {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            cmd,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let bins = Bins {
        agent: layout.profile_dir.join("routewatch-agent"),
        client: layout.profile_dir.join("routewatch"),
    };
    for p in [&bins.agent, &bins.client] {
        if !p.exists() {
            return Err(format!(
                "{:?} succeeded but {} does not exist",
                cmd,
                p.display()
            ));
        }
    }
    Ok(bins)
}

/// The binaries, built once per test process. Panics with cargo's output if
/// the build fails.
pub fn bins() -> &'static Bins {
    static BINS: OnceLock<Result<Bins, String>> = OnceLock::new();
    match BINS.get_or_init(build) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    }
}

/// Path of `routewatch-agent`.
pub fn agent_bin() -> &'static Path {
    &bins().agent
}

/// Path of `routewatch` (the client).
pub fn client_bin() -> &'static Path {
    &bins().client
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_derived_from_the_test_binary() {
        let l = layout().unwrap();
        assert!(l.target_dir.join("CACHEDIR.TAG").exists(), "{l:?}");
        assert_eq!(l.profile_dir, l.target_dir.join(&l.profile), "{l:?}");
        assert!(matches!(l.profile.as_str(), "debug" | "release") || !l.profile.is_empty());
        assert!(workspace_manifest().exists());
    }
}
