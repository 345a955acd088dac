//! `query routes`: each host's table at a moment, as `show` prints a
//! table.

use std::collections::HashMap;

use super::args::Routes;
use super::narrow::Narrowed;
use super::targets::{self, Target};
use super::{gaps, version, Context};
use crate::order;
use crate::printer::{printer, rfc3339, Mode, Origin, Paint};
use crate::ClientError;

pub async fn run(cx: &mut Context<'_>, args: &Routes) -> Result<(), ClientError> {
    let t = cx.time("--at", &args.at)?;
    let narrowed = Narrowed::new(&args.filter)?;
    let all = targets::load(cx.store).await?;
    let chosen = targets::chosen(&all, &args.hosts, cx.notes)?;
    let mut versions =
        version::at_where(cx.store, &chosen, t, &narrowed.sql, narrowed.params.clone()).await?;
    versions.retain(|v| narrowed.keeps(v));
    let filtered = !args.filter.allow.is_empty() || !args.filter.deny.is_empty();
    let by_id: HashMap<i64, &Target> = chosen.iter().map(|t| (t.id, *t)).collect();
    for target in &chosen {
        gaps::note_moment(cx, target, t).await?;
        let begun = target.begins.is_some_and(|begins| begins <= t);
        if begun && !versions.iter().any(|v| v.target_id == target.id) {
            let what = if filtered {
                "nothing the filters keep"
            } else {
                "no routes, rules or nexthop objects"
            };
            writeln!(
                cx.notes,
                "routewatch: {} held {what} at {}",
                target.label(),
                rfc3339(t)
            )?;
        }
    }
    let mut events: Vec<(&Target, i64, _)> = versions
        .iter()
        .filter_map(|v| Some((*by_id.get(&v.target_id)?, v.vid, v.event())))
        .collect();
    events.sort_by(|(a, a_vid, x), (b, b_vid, y)| {
        targets::by_label(a, b)
            .then_with(|| order::compare(x, y))
            .then_with(|| a_vid.cmp(b_vid))
    });
    let many = chosen.len() > 1;
    let mut print = printer(cx.format, Mode::Show, Paint::NONE);
    for (target, _, event) in &events {
        let from = Origin {
            host: target.label(),
            many,
        };
        print.print(cx.out, &from, event)?;
    }
    print.finish(cx.out)?;
    Ok(())
}
