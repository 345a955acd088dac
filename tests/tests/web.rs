//! `routewatch web` end to end: an agent in a namespace, `collect` into a
//! store, `routewatch web` over it, and headless Chromium (through
//! chromedriver) loading each page, applying a filter and moving the time;
//! what the pages show is checked against `ip` and against the changes the
//! test made. A screenshot of each page is kept under
//! target/web-screenshots/. Then the refusals and the checks that guard
//! the pages elsewhere than on loopback: the bearer token and mutual TLS.
//!
//! Everything runs inside the test's namespace (its own loopback): the
//! server, chromedriver and Chromium, and the test's WebDriver client
//! (a thread that entered the namespace).

mod pki;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use pki::{strs, Ca, Dir, Mtls, CLIENT_ID};
use routewatch_tests::bins::client_bin;
use routewatch_tests::util::{read_lossy, tail_lines, temp_path, terminate, TempDir};
use routewatch_tests::{add_veth_pair, Agent, Collector, IpBatch, Netns, TestStore};
use serde_json::Value;

/// Where chromedriver listens, inside the test's namespace.
const DRIVER: &str = "http://127.0.0.1:9515";
/// Where the pages are served, inside the test's namespace.
const WEB: &str = "127.0.0.1:8080";
/// How long a page may take to show what the store holds.
const SHOWN: Duration = Duration::from_secs(30);

/// A process of the test's (web server or chromedriver) in a namespace,
/// its output in a file; stopped on drop, its output printed if the test
/// fails.
struct Process {
    child: Option<Child>,
    log: PathBuf,
    what: String,
    /// It leads a process group of its own, stopped with it (chromedriver
    /// and the Chromium it starts, which would outlive a failed test).
    group: bool,
}

impl Process {
    fn start(ns: &Netns, program: &Path, args: &[&str]) -> Process {
        Process::spawn(ns, program, args, false)
    }

    fn spawn(ns: &Netns, program: &Path, args: &[&str], group: bool) -> Process {
        use std::os::unix::process::CommandExt;
        let log = temp_path("web.log");
        let out = File::create(&log).expect("creating the log");
        let err = out.try_clone().expect("cloning the log");
        let what = format!("{} {}", program.display(), args.join(" "));
        let mut command = ns.command(program, args);
        if group {
            command.process_group(0);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{what}`: {e}"));
        Process {
            child: Some(child),
            log,
            what,
            group,
        }
    }

    fn log(&self) -> String {
        read_lossy(&self.log)
    }

    /// Waits until its output says `words` (panics with it after a while,
    /// or when it exits).
    fn wait_for(&mut self, words: &str) {
        let started = Instant::now();
        while !self.log().contains(words) {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("`{}` exited ({status}):\n{}", self.what, self.log());
            }
            assert!(
                started.elapsed() < SHOWN,
                "`{}` did not say {words:?}:\n{}",
                self.what,
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id() as libc::pid_t;
            terminate(&mut child, Duration::from_secs(5));
            if self.group {
                // SAFETY: a signal to the process group this test made.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
        }
        if thread::panicking() {
            eprintln!("--- {} ---\n{}", self.what, tail_lines(&self.log(), 60));
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// `routewatch web ARGS` in `ns`, serving once it says so.
fn web(ns: &Netns, args: &[&str]) -> Process {
    let mut all = vec!["web"];
    all.extend_from_slice(args);
    let mut p = Process::start(ns, client_bin(), &all);
    p.wait_for("routewatch web: serving");
    p
}

/// chromedriver in `ns`; a test that cannot have it fails, saying what to
/// install.
fn chromedriver(ns: &Netns) -> Process {
    for (what, path) in [
        ("chromedriver", "/usr/bin/chromedriver"),
        ("chromium", CHROMIUM),
    ] {
        assert!(
            Path::new(path).exists(),
            "the web pages' tests drive headless Chromium, and {what} ({path}) is missing: \
             install Debian's chromium and chromium-driver packages \
             (apt-get install chromium chromium-driver; .ci/run does)"
        );
    }
    let mut p = Process::spawn(
        ns,
        Path::new("/usr/bin/chromedriver"),
        &["--port=9515"],
        true,
    );
    p.wait_for("started successfully");
    p
}

/// Chromium's own binary (/usr/bin/chromium is a wrapper script).
const CHROMIUM: &str = "/usr/lib/chromium/chromium";

/// A WebDriver session with headless Chromium, from inside the namespace.
async fn browser(profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(DRIVER)
        .await
        .unwrap_or_else(|e| panic!("cannot start a Chromium session through chromedriver: {e}"))
}

/// Where screenshots are kept: target/web-screenshots/.
fn screenshot_dir() -> PathBuf {
    let target = client_bin()
        .parent()
        .and_then(Path::parent)
        .expect("the binary lives in target/PROFILE");
    let dir = target.join("web-screenshots");
    std::fs::create_dir_all(&dir).expect("creating target/web-screenshots");
    dir
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("a screenshot");
    let path = screenshot_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// The text of every element `css` finds.
async fn texts(c: &Client, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in c.find_all(Locator::Css(css)).await.expect("find_all") {
        out.push(e.text().await.expect("text"));
    }
    out
}

/// Waits until `check` holds of the texts `css` finds (reloading nothing:
/// for pages that change by themselves); panics with what was shown.
async fn wait_texts(
    c: &Client,
    css: &str,
    what: &str,
    check: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let started = Instant::now();
    loop {
        let t = texts(c, css).await;
        if check(&t) {
            return t;
        }
        assert!(started.elapsed() < SHOWN, "{what}: the page shows {t:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sets a form's field and submits the form, waiting for the new page.
async fn fill_and_submit(c: &Client, field: &str, value: &str) {
    let input = c
        .find(Locator::Css(&format!("form.filters [name=\"{field}\"]")))
        .await
        .unwrap_or_else(|e| panic!("no field {field}: {e}"));
    input.clear().await.expect("clear");
    input.send_keys(value).await.expect("send_keys");
    let before = c.current_url().await.expect("url");
    c.find(Locator::Css("form.filters button[type=submit]"))
        .await
        .expect("the form's button")
        .click()
        .await
        .expect("submit");
    let started = Instant::now();
    while c.current_url().await.expect("url") == before {
        assert!(
            started.elapsed() < SHOWN,
            "submitting {field}={value} loaded no page"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.wait()
        .for_element(Locator::Css("main"))
        .await
        .expect("the new page");
}

/// The JSON twin of `path`, read by the browser.
async fn json_twin(c: &Client, path: &str) -> Value {
    let sep = if path.contains('?') { '&' } else { '?' };
    c.goto(&format!("http://{WEB}{path}{sep}format=json"))
        .await
        .expect("goto");
    let body = c
        .find(Locator::Css("body"))
        .await
        .expect("body")
        .text()
        .await
        .expect("text");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"))
}

/// The destinations of the kernel's routes of table main, both families,
/// as `ip route` prints them.
fn main_table(ns: &Netns) -> Vec<String> {
    let mut dsts = Vec::new();
    for family in ["-4", "-6"] {
        let routes = ns.ip_json(&format!("{family} -d route show table main"));
        for r in routes.as_array().expect("ip -j prints an array") {
            let dst = r["dst"].as_str().expect("dst").to_owned();
            let kind = r["type"].as_str().unwrap_or("unicast");
            dsts.push(if kind == "unicast" {
                dst
            } else {
                format!("{kind} {dst}")
            });
        }
    }
    dsts.sort();
    dsts
}

/// The objects a host page lists, as their first words (a route's
/// destination, with its type when not unicast).
fn shown_destinations(rows: &[String]) -> Vec<String> {
    let mut d: Vec<String> = rows
        .iter()
        .map(|r| {
            let words: Vec<&str> = r.split_whitespace().collect();
            match words.as_slice() {
                [kind @ ("local" | "broadcast" | "multicast" | "anycast" | "blackhole"
                | "unreachable" | "prohibit"), dst, ..] => {
                    format!("{kind} {dst}")
                }
                [dst, ..] => (*dst).to_owned(),
                [] => String::new(),
            }
        })
        .collect();
    d.sort();
    d
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// The destinations of the routes `ip route show table all match PREFIX`
/// lists: the routes that contain PREFIX.
fn containing(ns: &Netns, prefix: &str) -> Vec<String> {
    let routes = ns.ip_json(&format!("route show table all match {prefix}"));
    let mut dsts: Vec<String> = routes
        .as_array()
        .expect("ip -j prints an array")
        .iter()
        .map(|r| r["dst"].as_str().expect("dst").to_owned())
        .collect();
    dsts.sort();
    dsts
}

/// Host routes 10.80.0.0 to 10.80.2.19 in table 100, one version each:
/// more than a page of the prefix page.
const MANY: usize = 520;

#[test]
fn web_pages_in_chromium_show_what_the_kernel_holds_and_what_changed_on_sqlite() {
    pages_in_chromium(TestStore::sqlite());
}

#[test]
fn web_pages_in_chromium_show_what_the_kernel_holds_and_what_changed_on_postgres() {
    pages_in_chromium(TestStore::postgres("web_chromium"));
}

/// Every page in Chromium over `store`, which a collector fills from an
/// agent in a namespace.
fn pages_in_chromium(store: TestStore) {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let agent = Agent::start(&ns);
    let addr = agent.addr().to_owned();
    let collector = Collector::start(&ns, &store, &[&addr]);
    store.wait_stored(&ns, &addr);
    thread::sleep(Duration::from_millis(1100));
    let start = now_rfc3339();
    thread::sleep(Duration::from_millis(1100));
    ns.ip("route add 10.60.0.0/24 via 10.1.0.10");
    ns.ip("route add 10.0.0.0/8 via 10.1.0.10");
    let many: String = (0..MANY)
        .map(|i| {
            format!(
                "route add 10.80.{}.{}/32 via 10.1.0.10 table 100\n",
                i / 250,
                i % 250
            )
        })
        .collect();
    ns.ip_batch(&many);
    store.wait_stored(&ns, &addr);
    thread::sleep(Duration::from_millis(1100));
    let before = now_rfc3339();
    thread::sleep(Duration::from_millis(1100));
    // The change the pages must show, made by one `ip` process the agent
    // names.
    let mut ip = IpBatch::start(&ns);
    ip.send("route replace 10.60.0.0/24 via 10.1.0.11\nroute add 10.61.0.0/24 via 10.1.0.10\n");
    let ip_by = format!("ip[{}]", ip.pid());
    store.wait_stored(&ns, &addr);
    let kernel_main = main_table(&ns);
    let kernel_containing = containing(&ns, "10.60.0.5");
    assert_eq!(
        kernel_containing,
        ["10.0.0.0/8", "10.60.0.0/24"],
        "the routes that contain 10.60.0.5"
    );

    let url = store.url();
    let _web = web(&ns, &["--store", &url, "--listen", WEB]);
    let _driver = chromedriver(&ns);
    let profile = TempDir::new("chromium");
    let host_label = agent_hostname(&ns, &addr);
    let mut collector = Some(collector);

    ns.in_ns(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async {
            let c = browser(&profile).await;

            // Fleet: the host, following; a filter that matches nothing.
            c.goto(&format!("http://{WEB}/fleet")).await.expect("goto fleet");
            let rows = texts(&c, "#hosts tbody tr").await;
            assert_eq!(rows.len(), 1, "one host: {rows:#?}");
            assert!(rows[0].contains(&host_label) && rows[0].contains("following"), "{rows:#?}");
            screenshot(&c, "fleet").await;
            fill_and_submit(&c, "q", "no-such-host").await;
            let count = texts(&c, "#count").await;
            assert!(count[0].starts_with("0 hosts"), "{count:?}");
            assert!(c.current_url().await.unwrap().as_str().contains("q=no-such-host"));
            let twin = json_twin(&c, "/fleet").await;
            assert_eq!(twin["hosts"][0]["address"], addr.as_str(), "{twin}");
            assert_eq!(twin["total"], 1, "{twin}");
            let twin = json_twin(&c, &format!("/fleet?q={}&state=following&sort=routes&desc=1", &addr[..6])).await;
            assert_eq!(twin["hosts"][0]["address"], addr.as_str(), "filtered by address and state: {twin}");
            let twin = json_twin(&c, "/fleet?state=unreachable").await;
            assert_eq!(twin["total"], 0, "{twin}");

            // Host: table main as ip shows it, then before the change.
            c.goto(&format!("http://{WEB}/host?host={addr}")).await.expect("goto host");
            fill_and_submit(&c, "table", "main").await;
            let rows = texts(&c, "#table-main tbody tr td:first-child").await;
            assert_eq!(
                shown_destinations(&rows),
                kernel_main,
                "the host page's table main is ip's: {rows:#?}"
            );
            assert!(rows.iter().any(|r| r.starts_with("10.60.0.0/24 via 10.1.0.11")), "{rows:#?}");
            screenshot(&c, "host").await;
            fill_and_submit(&c, "at", &before).await;
            let rows = texts(&c, "#table-main tbody tr td:first-child").await;
            assert!(rows.iter().any(|r| r.starts_with("10.60.0.0/24 via 10.1.0.10")), "before the change: {rows:#?}");
            assert!(!rows.iter().any(|r| r.starts_with("10.61.0.0/24")), "10.61.0.0/24 came later: {rows:#?}");
            let heading = texts(&c, "h1").await;
            assert!(heading[0].contains(&before.replace('Z', "")[..19]), "{heading:?}");
            // The slider moves the moment: to the start of the record.
            c.execute(
                "const s = document.getElementById('time-slider'); s.value = s.min; s.dispatchEvent(new Event('change'));",
                vec![],
            )
            .await
            .expect("moving the slider");
            let started = Instant::now();
            while !c.current_url().await.unwrap().as_str().contains("at=20") {
                assert!(started.elapsed() < SHOWN, "the slider loaded no page");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let twin = json_twin(&c, &format!("/host?host={addr}&table=main&at={before}")).await;
            let objects = twin["objects"].as_array().expect("objects");
            assert!(
                objects.iter().any(|o| o["dst"] == "10.60.0.0/24" && o["gateway"] == "10.1.0.10"),
                "{twin}"
            );

            // Prefix: two versions of 10.60.0.0/24, on a timeline, the
            // second made by the `ip` process.
            c.goto(&format!("http://{WEB}/prefix?prefix=10.60.0.0/24")).await.expect("goto prefix");
            let rows = texts(&c, "#history tbody tr").await;
            assert_eq!(rows.len(), 2, "{rows:#?}");
            assert!(rows[0].contains("10.1.0.10") && rows[1].contains("10.1.0.11"), "{rows:#?}");
            let by = texts(&c, "#history tbody tr td:nth-child(5)").await;
            assert_eq!(by[1], ip_by, "the replace's changer: {rows:#?}");
            let bars = c.find_all(Locator::Css("#timeline rect")).await.unwrap();
            assert_eq!(bars.len(), 2, "one bar per version");
            screenshot(&c, "prefix").await;
            let twin = json_twin(&c, "/prefix?prefix=10.60.0.0/24").await;
            let second = &twin["lines"][1];
            assert_eq!(second["changed_by"], ip_by.as_str(), "{twin}");
            assert_eq!(second["changed_by_comm"], "ip", "{twin}");
            assert_eq!(second["changed_by_pid"], ip.pid(), "{twin}");
            c.goto(&format!("http://{WEB}/prefix?prefix=10.60.0.0/24")).await.expect("goto prefix");
            fill_and_submit(&c, "prefix", "10.61.0.0/16").await;
            let rows = texts(&c, "#history tbody tr").await;
            assert_eq!(rows.len(), 1, "{rows:#?}");
            // Exactly the /16: nothing.
            let twin = json_twin(&c, "/prefix?prefix=10.61.0.0/16&mode=exact").await;
            assert_eq!(twin["total"], 0, "{twin}");
            // Containing an address: the routes ip's `match` lists, now.
            c.goto(&format!("http://{WEB}/prefix?prefix=10.60.0.5")).await.expect("goto prefix");
            c.find(Locator::Css("form.filters select[name=\"mode\"] option[value=\"containing\"]"))
                .await
                .expect("the containing mode")
                .click()
                .await
                .expect("choosing containing");
            fill_and_submit(&c, "prefix", "10.60.0.5").await;
            assert!(c.current_url().await.unwrap().as_str().contains("mode=containing"));
            let untils = texts(&c, "#history tbody tr td:nth-child(2)").await;
            let routes = texts(&c, "#history tbody tr td:last-child").await;
            let mut current: Vec<String> = untils
                .iter()
                .zip(&routes)
                .filter(|(until, _)| *until == "current")
                .map(|(_, route)| route.split_whitespace().next().unwrap_or("").to_owned())
                .collect();
            current.sort();
            assert_eq!(current, kernel_containing, "the current routes containing 10.60.0.5: {routes:#?}");
            assert_eq!(routes.len(), 3, "10.0.0.0/8 and the two versions of 10.60.0.0/24: {routes:#?}");
            screenshot(&c, "prefix-containing").await;
            let twin = json_twin(&c, "/prefix?prefix=10.60.0.0/24&mode=containing").await;
            assert_eq!(twin["mode"], "containing", "{twin}");
            let mut dsts: Vec<&str> = twin["lines"].as_array().unwrap().iter().map(|l| l["dst"].as_str().unwrap()).collect();
            dsts.sort();
            assert_eq!(dsts, ["10.0.0.0/8", "10.60.0.0/24", "10.60.0.0/24"], "{twin}");

            // Paging: more than a page of versions; the next page holds the
            // rest.
            c.goto(&format!("http://{WEB}/prefix?prefix=10.80.0.0/16")).await.expect("goto prefix");
            let per_page = 500;
            let first = wait_texts(&c, "#history tbody tr td:last-child", "a first page of 500 versions", |t| t.len() == per_page).await;
            let count = texts(&c, "#count").await;
            assert!(count[0].starts_with(&format!("{MANY} versions")), "{count:?}");
            c.find(Locator::Css("a[rel=next]")).await.expect("a next page").click().await.expect("next");
            c.wait().for_element(Locator::Css("a[rel=prev]")).await.expect("the next page");
            let rest = wait_texts(&c, "#history tbody tr td:last-child", "the rest on the next page", |t| t.len() == MANY - per_page).await;
            assert!(c.find_all(Locator::Css("a[rel=next]")).await.unwrap().is_empty(), "no third page");
            let mut all: Vec<String> = first.into_iter().chain(rest).collect();
            all.sort();
            all.dedup();
            assert_eq!(all.len(), MANY, "the pages hold every version once");

            // Diff: before the change and now, side by side.
            c.goto(&format!("http://{WEB}/diff?host={addr}&at={before}&at2=now"))
                .await
                .expect("goto diff");
            let rows = texts(&c, "#diff tbody tr").await;
            assert!(
                rows.iter().any(|r| r.starts_with("changed") && r.contains("10.60.0.0/24") && r.contains("10.1.0.10") && r.contains("10.1.0.11")),
                "{rows:#?}"
            );
            assert!(rows.iter().any(|r| r.starts_with("added") && r.contains("10.61.0.0/24")), "{rows:#?}");
            assert_eq!(rows.len(), 2, "{rows:#?}");
            screenshot(&c, "diff").await;
            // Every route added since the first moment: more than a page;
            // the next page holds the rest.
            c.goto(&format!("http://{WEB}/diff?host={addr}&at={start}&at2=now"))
                .await
                .expect("goto diff");
            let page1 = texts(&c, "#diff tbody tr").await;
            assert!(page1.iter().all(|r| r.starts_with("added")), "{page1:#?}");
            let first_page = c.current_url().await.expect("url");
            c.find(Locator::Css("a[rel=next]")).await.expect("a next page").click().await.expect("next");
            // The next page, whole: not the first one still shown while it
            // loads, nor the part of it streamed so far.
            let started = Instant::now();
            loop {
                let moved = c.current_url().await.expect("url") != first_page;
                let state = c.execute("return document.readyState", vec![]).await.expect("readyState");
                if moved && state == "complete" {
                    break;
                }
                assert!(started.elapsed() < SHOWN, "the next page never loaded");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let page2 = texts(&c, "#diff tbody tr").await;
            assert!(c.find_all(Locator::Css("a[rel=next]")).await.unwrap().is_empty(), "no third page: {page2:#?}");
            let mut added: Vec<String> = page1.iter().chain(&page2).cloned().collect();
            added.sort();
            added.dedup();
            assert_eq!(added.len(), MANY + 3, "10.0.0.0/8, 10.60.0.0/24, 10.61.0.0/24 and the {MANY} host routes, each once");

            // Live: a change made now arrives, with who made it; one
            // outside the filter does not.
            c.goto(&format!("http://{WEB}/live?within=10.62.0.0/15")).await.expect("goto live");
            wait_texts(&c, "#live-state", "the live page connects", |t| t.first().is_some_and(|s| s.starts_with("following"))).await;
            ns.ip("route add 10.64.0.0/24 via 10.1.0.10");
            ip.send("route add 10.62.0.0/24 via 10.1.0.10\n");
            let rows = wait_texts(&c, "#live tbody tr", "the new route arrives live", |rows| {
                rows.iter().any(|r| r.contains("10.62.0.0/24"))
            })
            .await;
            assert!(!rows.iter().any(|r| r.contains("10.64.0.0/24")), "outside the filter: {rows:#?}");
            let row = rows.iter().find(|r| r.contains("10.62.0.0/24")).unwrap();
            assert!(row.contains(&host_label) && row.contains("add"), "{rows:#?}");
            assert!(row.contains(&ip_by), "who made it: {rows:#?}");
            screenshot(&c, "live").await;

            // A host that appears after the page opened: another agent,
            // followed by a collector that starts now (the first one
            // stops, so that only the new host can bring the change).
            let other = Agent::start_at(&ns, "127.0.0.1:50052", &[]);
            let other_addr = other.addr().to_owned();
            collector.take().expect("the collector").stop(Duration::from_secs(10));
            let _second = Collector::start(&ns, &store, &[&other_addr]);
            store.wait_stored(&ns, &other_addr);
            ip.send("route add 10.63.0.0/24 via 10.1.0.10\n");
            wait_texts(&c, "#live tbody tr", "the new host's change arrives live", |rows| {
                rows.iter().any(|r| r.contains("10.63.0.0/24") && r.contains(&ip_by))
            })
            .await;
            let twin = json_twin(&c, "/live?within=10.62.0.0/15").await;
            let changes = twin["changes"].as_array().expect("changes");
            assert!(
                changes.iter().any(|l| l["dst"] == "10.63.0.0/24" && l["changed_by"]["pid"] == ip.pid() && l["changed_by"]["comm"] == "ip"),
                "{twin}"
            );

            c.close().await.expect("closing the session");
        });
    });
}

/// The host name the agent reports (the namespace's host name).
fn agent_hostname(ns: &Netns, addr: &str) -> String {
    let info = routewatch_tests::run_show(ns.name(), &["info", "--insecure", "-o", "json", addr])
        .unwrap_or_else(|e| panic!("{e}"));
    info[0]["host"].as_str().expect("host").to_owned()
}

/// `routewatch web ARGS` must refuse to start, saying `words`.
fn assert_refused(args: &[&str], words: &[&str]) {
    let mut all = vec!["web"];
    all.extend_from_slice(args);
    let out = std::process::Command::new(client_bin())
        .args(&all)
        .output()
        .expect("running routewatch web");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "web {args:?}: {stderr}");
    for w in words {
        assert!(
            stderr.contains(w),
            "web {args:?} does not say {w:?}:\n{stderr}"
        );
    }
}

#[test]
fn web_refuses_to_expose_the_pages_without_tls_and_authentication() {
    assert_refused(
        &["--listen", "0.0.0.0:0"],
        &[
            "not a loopback address",
            "--tls-cert",
            "--client-ca",
            "--token-file",
        ],
    );
    assert_refused(
        &[
            "--listen",
            "[::]:0",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ],
        &["--client-ca FILE", "--token-file FILE"],
    );
    assert_refused(&["--tls-cert", "c.pem"], &["--tls-cert needs --tls-key"]);
    let dir = Dir::new();
    let short = dir.write("short-token", "abc\n");
    assert_refused(&["--token-file", &short], &["at least 16 characters"]);
}

/// `curl ARGS` in `ns`: its status code ("000" when no HTTP answer came)
/// and body.
fn curl(ns: &Netns, args: &[&str]) -> (String, String) {
    let mut all = vec!["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10"];
    all.extend_from_slice(args);
    let out = ns.output("curl", &all);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.to_owned(), body.to_owned())
}

/// A host and a store with its record, for the access tests.
fn served_store() -> (Netns, Agent, TestStore, Collector) {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let agent = Agent::start(&ns);
    let addr = agent.addr().to_owned();
    let store = TestStore::sqlite();
    let collector = Collector::start(&ns, &store, &[&addr]);
    store.wait_stored(&ns, &addr);
    (ns, agent, store, collector)
}

#[test]
fn web_elsewhere_than_loopback_needs_the_bearer_token() {
    let (ns, _agent, store, _collector) = served_store();
    let dir = Dir::new();
    let ca = Ca::new("routewatch web test CA");
    let leaf = ca.agent(&["localhost"]);
    let cert = dir.write("web.pem", &leaf.cert);
    let key = dir.write("web-key.pem", &leaf.key);
    let ca_file = dir.write("ca.pem", &ca.pem);
    let token = "k3y-0f-the-w3b-pages-1234567890";
    let token_file = dir.write("token", &format!("{token}\n"));
    let url = store.url();
    let _web = web(
        &ns,
        &[
            "--store",
            &url,
            "--listen",
            "10.1.0.1:8443",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--token-file",
            &token_file,
        ],
    );
    let base = [
        "--cacert",
        ca_file.as_str(),
        "--resolve",
        "localhost:8443:10.1.0.1",
    ];
    let page = "https://localhost:8443/fleet?format=json";
    let with = |extra: &[&str]| {
        let mut a: Vec<&str> = base.to_vec();
        a.extend_from_slice(extra);
        curl(&ns, &a)
    };
    let (code, body) = with(&[page]);
    assert_eq!(code, "401", "{body}");
    assert!(body.contains("Authorization: Bearer"), "{body}");
    let wrong = "Authorization: Bearer k3y-0f-the-w3b-pages-1234567891".to_owned();
    assert_eq!(with(&["-H", &wrong, page]).0, "401");
    let right = format!("Authorization: Bearer {token}");
    let (code, body) = with(&["-H", &right, page]);
    assert_eq!(code, "200", "{body}");
    assert!(body.contains("\"hosts\""), "{body}");
    // A browser gives it once in the URL; a cookie keeps it.
    let (code, headers) = with(&[
        "-D",
        "-",
        &format!("https://localhost:8443/fleet?token={token}&q=x"),
    ]);
    assert_eq!(code, "303", "{headers}");
    assert!(headers.contains("location: /fleet?q=x"), "{headers}");
    assert!(
        headers.contains(&format!(
            "routewatch_token={token}; Path=/; HttpOnly; Secure"
        )),
        "{headers}"
    );
    let cookie = format!("Cookie: routewatch_token={token}");
    assert_eq!(with(&["-H", &cookie, page]).0, "200");
    // Plain HTTP gets no page.
    assert_eq!(curl(&ns, &["http://10.1.0.1:8443/fleet"]).0, "000");
}

#[test]
fn web_with_mutual_tls_admits_only_the_allowed_clients() {
    let (ns, _agent, store, _collector) = served_store();
    let dir = Dir::new();
    let ca = Ca::new("routewatch web test CA");
    let mtls = Mtls::new(&dir, &ca, "");
    let url = store.url();
    let mut args = vec!["--store", url.as_str(), "--listen", "10.1.0.1:8443"];
    args.extend(strs(&mtls.agent_args));
    let _web = web(&ns, &args);
    // The agent's certificate (127.0.0.1, localhost) serves the pages.
    let ca_file = dir.path("ca.pem");
    let base = [
        "--cacert",
        ca_file.as_str(),
        "--resolve",
        "localhost:8443:10.1.0.1",
    ];
    let page = "https://localhost:8443/fleet?format=json";
    let with = |extra: &[&str]| {
        let mut a: Vec<&str> = base.to_vec();
        a.extend_from_slice(extra);
        curl(&ns, &a)
    };
    let (code, body) = with(&[
        "--cert",
        &dir.path("client.pem"),
        "--key",
        &dir.path("client-key.pem"),
        page,
    ]);
    assert_eq!(code, "200", "the allowed client ({CLIENT_ID}): {body}");
    assert!(body.contains("\"hosts\""), "{body}");
    let other = ca.client(&["spiffe://routewatch.test/someone-else"]);
    let other_cert = dir.write("other.pem", &other.cert);
    let other_key = dir.write("other-key.pem", &other.key);
    let (code, body) = with(&["--cert", &other_cert, "--key", &other_key, page]);
    assert_eq!(code, "403", "{body}");
    assert!(body.contains("--allow-client"), "{body}");
    // No certificate: no TLS session, no page.
    assert_eq!(with(&[page]).0, "000");
}

#[test]
fn web_over_postgres_reads_through_a_read_only_session() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let agent = Agent::start(&ns);
    let addr = agent.addr().to_owned();
    let store = TestStore::postgres("web_pages");
    let _collector = Collector::start(&ns, &store, &[&addr]);
    ns.ip("route add 10.70.0.0/24 via 10.1.0.10");
    store.wait_stored(&ns, &addr);
    let url = store.url();
    let _web = web(&ns, &["--store", &url, "--listen", WEB]);
    let get = |path: &str| -> Value {
        let (code, body) = curl(&ns, &[&format!("http://{WEB}{path}")]);
        assert_eq!(code, "200", "{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    };
    let fleet = get("/fleet?format=json");
    assert_eq!(fleet["hosts"][0]["address"], addr.as_str(), "{fleet}");
    assert!(
        !fleet["hosts"][0]["held_by"].is_null(),
        "a collector holds it: {fleet}"
    );
    let host = get(&format!(
        "/host?host={addr}&table=main&family=inet&format=json"
    ));
    let mut shown: Vec<String> = host["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .filter(|o| o["object"] == "route")
        .map(|o| o["dst"].as_str().expect("dst").to_owned())
        .collect();
    shown.sort();
    let mut kernel: Vec<String> = ns
        .ip_json("-4 route show table main")
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dst"].as_str().unwrap().to_owned())
        .collect();
    kernel.sort();
    assert_eq!(shown, kernel, "{host}");
    assert_eq!(
        fleet["hosts"][0]["routes_by_table"]["inet main"],
        kernel.len(),
        "the fleet page counts table main's IPv4 routes as ip does: {fleet}"
    );
    let prefix = get("/prefix?prefix=10.70.0.0/24&format=json");
    assert_eq!(prefix["total"], 1, "{prefix}");
}
