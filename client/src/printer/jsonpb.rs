//! JSON lines in protobuf's canonical JSON mapping: every event of the API
//! as it arrived (heartbeats too), wrapped with the host it came from:
//! `{"host":"node1","event":{"streamId":"…","seq":"42","change":{…}}}`.
//! The client's own notices are the marker lines of `-o json`.

use std::io::{self, Write};

use routewatch_proto::v1::Event;
use serde_json::{Map, Value};

use super::json::write_notice;
use super::{Notice, Origin, Printer};
use crate::protojson;

pub struct JsonPbPrinter;

impl Printer for JsonPbPrinter {
    fn print(&mut self, out: &mut dyn Write, from: &Origin<'_>, event: &Event) -> io::Result<()> {
        serde_json::to_writer(&mut *out, &event_jsonpb(from.host, event))?;
        out.write_all(b"\n")
    }

    fn notice(
        &mut self,
        out: &mut dyn Write,
        from: &Origin<'_>,
        notice: &Notice<'_>,
        time_unix_nano: i64,
    ) -> io::Result<()> {
        write_notice(out, from.host, notice, time_unix_nano)
    }
}

/// The line for one event.
pub fn event_jsonpb(host: &str, event: &Event) -> Value {
    let mut m = Map::new();
    m.insert("host".into(), host.into());
    m.insert(
        "event".into(),
        protojson::to_json("routewatch.v1.Event", event),
    );
    Value::Object(m)
}
