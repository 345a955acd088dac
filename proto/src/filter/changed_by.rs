//! `changed_by`: who asked the kernel for the change (see `ChangedBy`):
//! "kernel", a pid, an executable path, a pod UID or a command name.

use super::{InvalidFilter, Predicate};
use crate::v1::{ChangedBy, Filter};

/// One wanted value, read once.
enum Wanted {
    Kernel,
    Pid(u32),
    Exe(String),
    /// A pod UID or a command name: either field may hold it.
    Word(String),
}

impl Wanted {
    fn read(v: &str) -> Result<Wanted, InvalidFilter> {
        if v.is_empty() {
            return Err(InvalidFilter::new(
                "changed_by",
                v,
                "expected kernel, a pid, an executable path, a pod UID or a command name",
            ));
        }
        Ok(if v == "kernel" {
            Wanted::Kernel
        } else if let Ok(pid) = v.parse::<u32>() {
            Wanted::Pid(pid)
        } else if v.starts_with('/') {
            Wanted::Exe(v.to_string())
        } else {
            Wanted::Word(v.to_string())
        })
    }

    fn matches(&self, by: &ChangedBy) -> bool {
        match self {
            Wanted::Kernel => by.kernel,
            Wanted::Pid(pid) => by.pid == *pid && by.pid != 0,
            Wanted::Exe(exe) => by.exe == *exe,
            Wanted::Word(w) => by.comm == *w || by.pod_uid == *w,
        }
    }
}

pub fn build(filter: &Filter, out: &mut Vec<Predicate>) -> Result<(), InvalidFilter> {
    if filter.changed_by.is_empty() {
        return Ok(());
    }
    let wanted = filter
        .changed_by
        .iter()
        .map(|v| Wanted::read(v))
        .collect::<Result<Vec<_>, _>>()?;
    out.push(Box::new(move |s| {
        s.changed_by
            .is_some_and(|by| wanted.iter().any(|w| w.matches(by)))
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::filter::testing::*;
    use crate::v1::ChangedBy;

    #[test]
    fn matches_kernel_pid_exe_comm_and_pod() {
        let r = route("10.0.0.0/8");
        let by = ChangedBy {
            port_id: 4242,
            pid: 4242,
            comm: "ip".into(),
            exe: "/usr/bin/ip".into(),
            pod_uid: "0b5a6c1e-2f4d-4c1a-9d3e-5f6a7b8c9d0e".into(),
            ..Default::default()
        };
        let mut s = added(&r);
        assert!(
            !passes(|f| f.changed_by = strings(&["ip"]), &s),
            "none known"
        );
        s.changed_by = Some(&by);
        for yes in [
            "ip",
            "4242",
            "/usr/bin/ip",
            "0b5a6c1e-2f4d-4c1a-9d3e-5f6a7b8c9d0e",
        ] {
            assert!(passes(|f| f.changed_by = strings(&[yes]), &s), "{yes}");
        }
        for no in ["kernel", "4243", "/sbin/ip", "bird"] {
            assert!(!passes(|f| f.changed_by = strings(&[no]), &s), "{no}");
        }
        let kernel = ChangedBy {
            kernel: true,
            ..Default::default()
        };
        s.changed_by = Some(&kernel);
        assert!(passes(|f| f.changed_by = strings(&["kernel"]), &s));
        assert!(!passes(|f| f.changed_by = strings(&["0"]), &s));
        assert_eq!(
            invalid(|f| f.changed_by = strings(&[""])).field,
            "changed_by"
        );
    }
}
