//! Requests that do not read as gRPC messages of the method's type (bad
//! protobuf, a compression flag other than 0 and 1, a compressed message
//! without grpc-encoding) are the client's mistake: INVALID_ARGUMENT saying
//! what was wrong, and the agent goes on serving.
//!
//! The frames are made by hand and sent with curl over HTTP/2 (cleartext,
//! prior knowledge), since a gRPC library would not send them.

use std::fs;

use routewatch_tests::util::temp_path;
use routewatch_tests::{Agent, Netns, AGENT_ADDR};

const SUBSCRIBE: &str = "routewatch.v1.RouteWatch/Subscribe";
const GET_INFO: &str = "routewatch.v1.RouteWatch/GetInfo";

/// One gRPC message frame: compression flag, length, bytes.
fn frame(flag: u8, message: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// `%XX` escapes of a grpc-message undone.
fn percent_decoded(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Posts `body` to `method` and returns (grpc-status, grpc-message) from
/// the response's headers or trailers.
fn call(ns: &Netns, method: &str, body: &[u8], headers: &[&str]) -> (String, String) {
    let path = temp_path("grpc-frame");
    fs::write(&path, body).expect("write the frame");
    let data = format!("@{}", path.display());
    let url = format!("http://{AGENT_ADDR}/{method}");
    let mut args = vec![
        "-sS",
        "--http2-prior-knowledge",
        "--max-time",
        "20",
        "-o",
        "/dev/null",
        "-D",
        "-",
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
    ];
    for h in headers {
        args.extend_from_slice(&["-H", h]);
    }
    args.extend_from_slice(&["--data-binary", &data, &url]);
    let out = ns.output("curl", &args);
    let _ = fs::remove_file(&path);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl failed ({}): {}\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| {
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
            .next_back()
    };
    let status =
        field("grpc-status").unwrap_or_else(|| panic!("no grpc-status in the response:\n{text}"));
    let message = field("grpc-message").map_or_else(String::new, |m| percent_decoded(&m));
    (status, message)
}

/// One malformed request and what its answer must say.
struct Case {
    what: &'static str,
    method: &'static str,
    body: Vec<u8>,
    headers: &'static [&'static str],
    says: &'static str,
}

#[test]
fn malformed_requests_are_invalid_argument_saying_what_was_wrong() {
    let ns = Netns::new();
    let mut agent = Agent::start(&ns);
    let garbage = [0xff, 0xff, 0xff, 0xff];
    // Field 1 (snapshot), a bool: a well-formed SubscribeRequest.
    let good = [0x08, 0x01];
    let case = |what, method, body, headers, says| Case {
        what,
        method,
        body,
        headers,
        says,
    };
    let cases = [
        case(
            "bad protobuf",
            SUBSCRIBE,
            frame(0, &garbage),
            &[],
            "does not decode",
        ),
        case(
            "compression flag 2",
            SUBSCRIBE,
            frame(2, &good),
            &[],
            "compression flag",
        ),
        case(
            "compressed without grpc-encoding",
            SUBSCRIBE,
            frame(1, &good),
            &[],
            "grpc-encoding",
        ),
        case(
            "gzip that is not gzip",
            SUBSCRIBE,
            frame(1, &garbage),
            &["grpc-encoding: gzip"],
            "decompress",
        ),
        case(
            "bad protobuf for GetInfo",
            GET_INFO,
            frame(0, &garbage),
            &[],
            "does not decode",
        ),
    ];
    for c in cases {
        let (status, message) = call(&ns, c.method, &c.body, c.headers);
        assert_eq!(
            status, "3",
            "{}: INVALID_ARGUMENT, got {status} ({message})",
            c.what
        );
        assert!(
            message.contains(c.says) && message.contains("malformed request"),
            "{}: the message says what was wrong: {message}",
            c.what
        );
    }
    agent.assert_running();
    // And a well-formed request still works.
    let (status, message) = call(&ns, GET_INFO, &frame(0, &[]), &[]);
    assert_eq!(status, "0", "GetInfo after the bad requests: {message}");
}
