//! `query routes`' filters, the flags of `show`: in the database first,
//! then exactly.
//!
//! The database narrows the versions it reads with what its columns say
//! plainly: the kind of object, the family, the namespace and the
//! destination (through the index on it). Those conditions are a superset
//! of what the filters pass; the versions read are then matched exactly by
//! the agent's own filter code, so that `query routes` keeps what `show`
//! would have kept at that moment.

use ipnet::IpNet;
use routewatch_proto::filter::{prefix, Filters, Object as SubjectObject, Subject};
use routewatch_proto::v1::{change, Action, Filter, Origin};

use super::history::Within;
use super::version::Version;
use crate::filter_args::FilterArgs;
use crate::store::schema::{destination, KIND_NEXTHOP, KIND_ROUTE, KIND_RULE};
use crate::store::Value;
use crate::ClientError;

/// The filters of the command line, compiled, and the SQL that narrows
/// the rows read.
pub struct Narrowed {
    filters: Filters,
    /// Conditions on `versions v` (`TRUE` for none), with their values.
    pub sql: String,
    pub params: Vec<Value>,
}

impl Narrowed {
    pub fn new(args: &FilterArgs) -> Result<Narrowed, ClientError> {
        for f in args.allow.iter().chain(&args.deny) {
            if !f.action.is_empty() || !f.origin.is_empty() {
                return Err(ClientError::Usage(
                    "--action and --origin do not apply to query routes: a table at a moment has no adds or deletes (query history and the route_changes view have them)".into(),
                ));
            }
        }
        let filters = Filters::compile(&args.allow, &args.deny)
            .map_err(|e| ClientError::Usage(e.to_string()))?;
        let (sql, params) = match args.allow.as_slice() {
            [one] => conditions(one)?,
            _ => ("TRUE".to_owned(), Vec::new()),
        };
        Ok(Narrowed {
            filters,
            sql,
            params,
        })
    }

    /// Whether `show` would keep `v`.
    pub fn keeps(&self, v: &Version) -> bool {
        let object = match &v.object {
            change::Object::Route(r) => SubjectObject::Route(r),
            change::Object::Nexthop(n) => SubjectObject::Nexthop(n),
            change::Object::Rule(r) => SubjectObject::Rule(r),
        };
        self.filters.matches(&Subject {
            action: Action::Add,
            origin: Origin::Dump,
            netns: &v.netns,
            object,
            changed_by: None,
        })
    }
}

/// What one allow filter implies of a version's columns.
fn conditions(f: &Filter) -> Result<(String, Vec<Value>), ClientError> {
    let mut and: Vec<String> = Vec::new();
    let mut params = Vec::new();
    let list = |n: usize| vec!["?"; n].join(", ");
    if !f.object.is_empty() {
        let kinds: Vec<i64> = f
            .object
            .iter()
            .filter_map(|o| match o.as_str() {
                "route" => Some(KIND_ROUTE),
                "nexthop" => Some(KIND_NEXTHOP),
                "rule" => Some(KIND_RULE),
                _ => None,
            })
            .collect();
        if kinds.len() == f.object.len() {
            and.push(format!("v.kind IN ({})", list(kinds.len())));
            params.extend(kinds.into_iter().map(Value::Int));
        }
    }
    if !f.family.is_empty() {
        let families: Vec<i64> = f
            .family
            .iter()
            .filter_map(|x| match x.as_str() {
                "inet" => Some(1),
                "inet6" => Some(2),
                _ => None,
            })
            .collect();
        if families.len() == f.family.len() {
            // Nexthop groups and blackhole nexthops have no family.
            and.push(format!("v.family IN (0, {})", list(families.len())));
            params.extend(families.into_iter().map(Value::Int));
        }
    }
    if !f.netns.is_empty() {
        and.push(format!("v.netns IN ({})", list(f.netns.len())));
        params.extend(f.netns.iter().cloned().map(Value::Text));
    }
    // Destinations: only routes have one.
    for (values, shape) in [
        (&f.prefix, Shape::Exactly),
        (&f.within, Shape::Within),
        (&f.contains, Shape::Contains),
    ] {
        if values.is_empty() {
            continue;
        }
        let mut or = Vec::new();
        for v in values {
            let nets = if v == "default" && shape == Shape::Exactly {
                vec![IpNet::V4(Default::default()), IpNet::V6(Default::default())]
            } else {
                vec![prefix(shape.field(), v).map_err(|e| ClientError::Usage(e.to_string()))?]
            };
            for net in nets {
                let range = match shape {
                    Shape::Exactly => Within::exactly(net),
                    Shape::Within => Within::inside(net),
                    Shape::Contains => {
                        // Destinations covering `net`: not a range of the
                        // index, but one family's prefixes up to its length.
                        let (len, lo, hi) = destination(&net);
                        let family = if net.addr().is_ipv4() { 1 } else { 2 };
                        or.push(
                            "(v.family = ? AND v.dst_len <= ? AND v.dst_lo <= ? AND v.dst_hi >= ?)",
                        );
                        params.extend([
                            Value::Int(family),
                            Value::Int(len),
                            Value::Bytes(lo),
                            Value::Bytes(hi),
                        ]);
                        continue;
                    }
                };
                or.push(Within::CLAUSE);
                range.bind(&mut params);
            }
        }
        and.push(format!("v.kind = {KIND_ROUTE} AND ({})", or.join(" OR ")));
    }
    if and.is_empty() {
        return Ok(("TRUE".to_owned(), params));
    }
    Ok((and.join(" AND "), params))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Exactly,
    Within,
    Contains,
}

impl Shape {
    fn field(self) -> &'static str {
        match self {
            Shape::Exactly => "prefix",
            Shape::Within => "within",
            Shape::Contains => "contains",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_allow_filter_narrows_the_rows_read() {
        let filter = Filter {
            family: vec!["inet".into()],
            within: vec!["10.0.0.0/16".into()],
            protocol: vec!["static".into()],
            ..Filter::default()
        };
        let (sql, params) = conditions(&filter).unwrap();
        assert_eq!(
            sql,
            format!("v.family IN (0, ?) AND v.kind = 1 AND ({})", Within::CLAUSE)
        );
        assert!(sql.contains("v.dst_lo >= ? AND v.dst_lo <= ?"), "{sql}");
        assert_eq!(params.len(), 7);
        assert_eq!(params[4], Value::Bytes(vec![10, 0, 0, 0]));
        assert_eq!(params[5], Value::Bytes(vec![10, 0, 255, 255]));
        // The protocol is matched exactly, after: no column condition.
        assert!(!sql.contains("protocol"));
    }

    #[test]
    fn several_allow_filters_or_deny_ones_read_everything_then_match() {
        let args = FilterArgs {
            allow: vec![
                Filter {
                    within: vec!["10.0.0.0/8".into()],
                    ..Filter::default()
                },
                Filter {
                    object: vec!["rule".into()],
                    ..Filter::default()
                },
            ],
            deny: vec![],
        };
        assert_eq!(Narrowed::new(&args).unwrap().sql, "TRUE");
    }
}
