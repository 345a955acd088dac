//! `IpBatch`: a long-lived `ip -n NS -batch -` reading commands from a pipe
//! kept open, so that every change it makes comes from one process (whose
//! pid the attribution tests expect); killed on drop.

use std::io::Write;
use std::process::{Child, Command, Stdio};

use crate::netns::Netns;

pub struct IpBatch {
    child: Child,
}

impl IpBatch {
    pub fn start(ns: &Netns) -> IpBatch {
        let child = Command::new("ip")
            .args(["-n", ns.name(), "-batch", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawning ip -batch -");
        IpBatch { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `lines` (each ending in a newline).
    pub fn send(&mut self, lines: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin piped");
        stdin
            .write_all(lines.as_bytes())
            .expect("writing to ip -batch");
        stdin.flush().expect("flushing ip -batch's input");
    }
}

impl Drop for IpBatch {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
