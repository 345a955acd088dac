//! `dev`: an output device of the route (any path) or nexthop object.

use super::values::interface_name;
use super::{InvalidFilter, Predicate};
use crate::v1::Filter;

pub fn build(filter: &Filter, out: &mut Vec<Predicate>) -> Result<(), InvalidFilter> {
    if filter.dev.is_empty() {
        return Ok(());
    }
    for name in &filter.dev {
        interface_name("dev", name)?;
    }
    let wanted = filter.dev.clone();
    out.push(Box::new(move |s| {
        s.object.devs().any(|d| wanted.iter().any(|w| w == d))
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::filter::testing::*;
    use crate::v1::NextHop;

    #[test]
    fn any_path_s_device() {
        let f = |f: &mut crate::v1::Filter| f.dev = strings(&["eth1", "eth2"]);
        let mut r = route("10.0.0.0/8");
        r.dev = "eth0".into();
        assert!(!passes(f, &added(&r)));
        r.dev.clear();
        r.nexthops = vec![
            NextHop {
                dev: "eth0".into(),
                ..Default::default()
            },
            NextHop {
                dev: "eth2".into(),
                ..Default::default()
            },
        ];
        assert!(passes(f, &added(&r)));
        let mut nh = nexthop(1);
        nh.dev = "eth1".into();
        assert!(passes(f, &nexthop_added(&nh)));
    }

    #[test]
    fn impossible_names_are_refused() {
        assert_eq!(invalid(|f| f.dev = strings(&[""])).field, "dev");
        assert_eq!(
            invalid(|f| f.dev = strings(&["a-very-long-interface"])).field,
            "dev"
        );
        assert_eq!(invalid(|f| f.dev = strings(&["a/b"])).field, "dev");
    }
}
