//! Who made a change, in both outputs: `by ip[4242]` / `by kernel` at the
//! end of a text line, the `changed_by` object in JSON.

use std::fmt::Write as _;

use routewatch_proto::v1::{ChangedBy, ChangedByHow};

use super::json_writer::JsonObject;

/// How the process was found, as JSON spells it.
pub fn how_name(how: i32) -> &'static str {
    match ChangedByHow::try_from(how) {
        Ok(ChangedByHow::Socket) => "socket",
        Ok(ChangedByHow::Pid) => "pid",
        Ok(ChangedByHow::Exited) => "exited",
        _ => "",
    }
}

/// ` by kernel`, ` by ip[4242]`, ` by kubelet[812] pod <uid>`, ` by port
/// 2147483647 (exited)`.
pub fn changed_by_text(by: &ChangedBy, s: &mut String) {
    if by.kernel {
        s.push_str(" by kernel");
        return;
    }
    if by.pid == 0 {
        let _ = write!(s, " by port {}", by.port_id);
        if by.how == ChangedByHow::Exited as i32 {
            s.push_str(" (exited)");
        }
        return;
    }
    let _ = write!(s, " by {}[{}]", by.comm, by.pid);
    if !by.pod_uid.is_empty() {
        let _ = write!(s, " pod {}", by.pod_uid);
    } else if !by.container_id.is_empty() {
        let short = by.container_id.get(..12).unwrap_or(&by.container_id);
        let _ = write!(s, " container {short}");
    }
}

/// `"changed_by":{...}`: `{"kernel":true}` for the kernel, else the port
/// id, how the process was found and what is known of it.
pub fn changed_by_json(by: &ChangedBy, o: &mut JsonObject<'_>) {
    let mut b = o.object("changed_by");
    if by.kernel {
        b.key("kernel").bool(true);
        return;
    }
    b.u64("port_id", by.port_id);
    let how = how_name(by.how);
    if !how.is_empty() {
        b.str("how", how);
    }
    if by.pid != 0 {
        b.u64("pid", by.pid);
    }
    for (key, value) in [
        ("comm", &by.comm),
        ("exe", &by.exe),
        ("cmdline", &by.cmdline),
        ("cgroup", &by.cgroup),
        ("container_id", &by.container_id),
        ("pod_uid", &by.pod_uid),
    ] {
        if !value.is_empty() {
            b.str(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::printer::json_map;

    fn ip() -> ChangedBy {
        ChangedBy {
            port_id: 4242,
            how: ChangedByHow::Pid as i32,
            pid: 4242,
            comm: "ip".into(),
            exe: "/usr/bin/ip".into(),
            ..Default::default()
        }
    }

    fn text(by: &ChangedBy) -> String {
        let mut s = String::new();
        changed_by_text(by, &mut s);
        s
    }

    #[test]
    fn text_names_the_process_the_kernel_or_the_port() {
        assert_eq!(text(&ip()), " by ip[4242]");
        let kernel = ChangedBy {
            kernel: true,
            ..Default::default()
        };
        assert_eq!(text(&kernel), " by kernel");
        let kubelet = ChangedBy {
            comm: "kubelet".into(),
            pod_uid: "0b5a6c1e-2f4d-4c1a-9d3e-5f6a7b8c9d0e".into(),
            ..ip()
        };
        assert_eq!(
            text(&kubelet),
            " by kubelet[4242] pod 0b5a6c1e-2f4d-4c1a-9d3e-5f6a7b8c9d0e"
        );
        let gone = ChangedBy {
            port_id: 77,
            how: ChangedByHow::Exited as i32,
            ..Default::default()
        };
        assert_eq!(text(&gone), " by port 77 (exited)");
    }

    #[test]
    fn json_is_an_object_without_empty_fields() {
        let map = json_map(|o| changed_by_json(&ip(), o));
        assert_eq!(
            serde_json::Value::Object(map).to_string(),
            r#"{"changed_by":{"port_id":4242,"how":"pid","pid":4242,"comm":"ip","exe":"/usr/bin/ip"}}"#
        );
        let kernel = ChangedBy {
            kernel: true,
            ..Default::default()
        };
        let map = json_map(|o| changed_by_json(&kernel, o));
        assert_eq!(
            serde_json::Value::Object(map).to_string(),
            r#"{"changed_by":{"kernel":true}}"#
        );
    }
}
