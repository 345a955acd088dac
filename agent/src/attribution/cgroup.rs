//! A process's cgroup path, and the container id and Kubernetes pod UID it
//! shows. Container runtimes name cgroups in two ways, after the cgroup
//! driver:
//!
//! - systemd: `/kubepods.slice/kubepods-besteffort.slice/`
//!   `kubepods-besteffort-pod<uid with _>.slice/cri-containerd-<id>.scope`
//!   (CRI-O: `crio-<id>.scope`; Docker: `/system.slice/docker-<id>.scope`;
//!   Podman: `libpod-<id>.scope`);
//! - cgroupfs: `/kubepods/besteffort/pod<uid>/<id>` (CRI-O: `crio-<id>`;
//!   Docker: `/docker/<id>`).
//!
//! A container id is 64 hexadecimal digits; a pod UID is a UUID, written
//! with `_` instead of `-` inside systemd slice names.

/// The path of a process's cgroup from the text of `/proc/<pid>/cgroup`:
/// the unified (v2) hierarchy's, else the v1 hierarchy systemd names
/// (`name=systemd`), else the first v1 hierarchy's.
pub fn path_of(proc_cgroup: &str) -> &str {
    let mut first = None;
    let mut systemd = None;
    for line in proc_cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() && path != "/" {
            return path;
        }
        if controllers == "name=systemd" {
            systemd = Some(path);
        }
        first.get_or_insert(path);
    }
    systemd.or(first).unwrap_or("")
}

/// The container id a cgroup path shows: the innermost component that is
/// one, after the runtimes' prefixes and `.scope` are taken off. A
/// runtime's monitor (CRI-O's `crio-conmon-<id>`) is not the container.
pub fn container_id(path: &str) -> Option<&str> {
    path.rsplit('/').find_map(|component| {
        let name = component.strip_suffix(".scope").unwrap_or(component);
        if name.starts_with("crio-conmon-") {
            return None;
        }
        let id = [
            "cri-containerd-",
            "crio-",
            "docker-",
            "libpod-",
            "containerd-",
        ]
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .unwrap_or(name);
        (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
    })
}

/// The Kubernetes pod UID a cgroup path shows (`pod<uid>` in a component),
/// with dashes.
pub fn pod_uid(path: &str) -> Option<String> {
    path.split('/').find_map(|component| {
        let name = component.strip_suffix(".slice").unwrap_or(component);
        // `kubepods-besteffort-pod<uid>`, `kubepods-pod<uid>`, `pod<uid>`.
        let at = name.rfind("pod")?;
        if at > 0 && !name[..at].ends_with('-') {
            return None;
        }
        let uid = &name[at + 3..];
        is_uuid(uid).then(|| uid.replace('_', "-"))
    })
}

/// 8-4-4-4-12 hexadecimal digits, separated by `-` or `_`.
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split(['-', '_']).collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f1c2b4a5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708";
    const UID: &str = "0b5a6c1e-2f4d-4c1a-9d3e-5f6a7b8c9d0e";
    const UID_: &str = "0b5a6c1e_2f4d_4c1a_9d3e_5f6a7b8c9d0e";

    fn parsed(path: &str) -> (Option<&str>, Option<String>) {
        (container_id(path), pod_uid(path))
    }

    #[test]
    fn containerd_and_cri_o_with_the_systemd_driver() {
        for runtime in ["cri-containerd", "crio"] {
            let path = format!(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/{runtime}-{ID}.scope"
            );
            assert_eq!(parsed(&path), (Some(ID), Some(UID.into())), "{path}");
        }
        // Guaranteed pods sit right under kubepods.slice.
        let path = format!("/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID}.scope");
        assert_eq!(parsed(&path), (Some(ID), Some(UID.into())));
    }

    #[test]
    fn containerd_and_cri_o_with_the_cgroupfs_driver() {
        let path = format!("/kubepods/burstable/pod{UID}/{ID}");
        assert_eq!(parsed(&path), (Some(ID), Some(UID.into())));
        let path = format!("/kubepods/pod{UID}/crio-{ID}");
        assert_eq!(parsed(&path), (Some(ID), Some(UID.into())));
    }

    #[test]
    fn docker_alone_and_podman() {
        assert_eq!(
            parsed(&format!("/system.slice/docker-{ID}.scope")),
            (Some(ID), None)
        );
        assert_eq!(parsed(&format!("/docker/{ID}")), (Some(ID), None));
        assert_eq!(
            parsed(&format!("/machine.slice/libpod-{ID}.scope/container")),
            (Some(ID), None)
        );
    }

    #[test]
    fn the_runtime_s_monitor_and_the_host_s_services_are_no_container() {
        let conmon = format!("/kubepods.slice/kubepods-pod{UID_}.slice/crio-conmon-{ID}.scope");
        assert_eq!(parsed(&conmon), (None, Some(UID.into())));
        assert_eq!(parsed("/system.slice/bird.service"), (None, None));
        assert_eq!(
            parsed("/user.slice/user-1000.slice/session-2.scope"),
            (None, None)
        );
        // "pod" inside another word, and a short id.
        assert_eq!(
            parsed(&format!("/system.slice/ipod{UID}.service")),
            (None, None)
        );
        assert_eq!(parsed("/docker/3f1c2b4a5d6e"), (None, None));
    }

    #[test]
    fn the_path_from_proc_cgroup() {
        assert_eq!(
            path_of("0::/system.slice/bird.service\n"),
            "/system.slice/bird.service"
        );
        let v1 = format!(
            "12:pids:/kubepods/pod{UID}/{ID}\n1:name=systemd:/kubepods/pod{UID}/{ID}\n0::/\n"
        );
        assert_eq!(path_of(&v1), format!("/kubepods/pod{UID}/{ID}"));
        assert_eq!(path_of("3:cpu:/a\n2:memory:/b\n"), "/a");
        assert_eq!(path_of(""), "");
    }
}
