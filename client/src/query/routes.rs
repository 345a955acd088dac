//! `query routes`: each host's table at a moment, as `show` prints a
//! table.

use super::args::Routes;
use super::narrow::Narrowed;
use super::targets;
use super::{gaps, version, Context};
use crate::printer::{printer, rfc3339, Mode, Origin, Paint};
use crate::ClientError;

pub async fn run(cx: &mut Context<'_>, args: &Routes) -> Result<(), ClientError> {
    let t = cx.time("--at", &args.at)?;
    let narrowed = Narrowed::new(&args.filter)?;
    let all = targets::load(cx.store).await?;
    let chosen = targets::chosen(&all, &args.hosts, cx.notes)?;
    let filtered = !args.filter.allow.is_empty() || !args.filter.deny.is_empty();
    let many = chosen.len() > 1;
    let mut print = printer(cx.format, Mode::Show, Paint::NONE);
    // One host at a time, in label order, each streamed in show's order.
    for target in &chosen {
        gaps::note_moment(cx, target, t).await?;
        let from = Origin {
            host: target.label(),
            many,
        };
        let mut kept = 0u64;
        let out = &mut *cx.out;
        version::at_each(
            cx.store,
            target,
            t,
            &narrowed.sql,
            narrowed.params.clone(),
            |v| {
                if narrowed.keeps(&v) {
                    kept += 1;
                    print.print(out, &from, &v.event())?;
                }
                Ok(())
            },
        )
        .await?;
        let begun = target.begins.is_some_and(|begins| begins <= t);
        if begun && kept == 0 {
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
    print.finish(cx.out)?;
    Ok(())
}
