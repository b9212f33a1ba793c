//! What a GET Bucket (v1) page holds, computed over a sorted key map: prefix, delimiter
//! roll-up into common prefixes, exclusive marker, max-keys and truncation. Both stores
//! that answer listings use it: coslocal's index and the client's in-memory store.
//!
//! Nothing is skipped: a directory marker object `dir/` is returned in Contents when
//! listing `prefix=dir/` (clients must skip it themselves, as with real COS).

use std::collections::BTreeMap;
use std::ops::Bound;

/// One listing request.
#[derive(Debug, Clone)]
pub struct ListQuery<'a> {
    pub prefix: &'a str,
    pub delimiter: Option<&'a str>,
    pub marker: &'a str,
    pub max_keys: usize,
}

/// One entry of a page, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item<V> {
    Object(String, V),
    Prefix(String),
}

impl<V> Item<V> {
    pub fn name(&self) -> &str {
        match self {
            Item::Object(k, _) | Item::Prefix(k) => k,
        }
    }
}

/// One page.
#[derive(Debug, Clone)]
pub struct Page<V> {
    pub items: Vec<Item<V>>,
    pub truncated: bool,
    /// The last entry of the page, set only when truncated.
    pub next_marker: Option<String>,
}

impl<V> Page<V> {
    /// The same page with every object's value mapped (e.g. to an owned copy, so the page
    /// outlives the lock on the map).
    pub fn map<W>(self, mut f: impl FnMut(V) -> W) -> Page<W> {
        Page {
            items: self
                .items
                .into_iter()
                .map(|i| match i {
                    Item::Object(k, v) => Item::Object(k, f(v)),
                    Item::Prefix(p) => Item::Prefix(p),
                })
                .collect(),
            truncated: self.truncated,
            next_marker: self.next_marker,
        }
    }
}

/// Lists `map` (keyed by object key) for `q`; objects come with a reference to their value.
pub fn list<'m, V>(map: &'m BTreeMap<String, V>, q: &ListQuery<'_>) -> Page<&'m V> {
    let mut items: Vec<Item<&'m V>> = Vec::new();
    let mut truncated = false;
    if q.max_keys == 0 {
        return Page {
            items,
            truncated,
            next_marker: None,
        };
    }
    let delimiter = q.delimiter.filter(|d| !d.is_empty());
    let mut lower: Bound<String> = if q.marker >= q.prefix {
        Bound::Excluded(q.marker.to_string())
    } else {
        Bound::Included(q.prefix.to_string())
    };
    'scan: loop {
        let mut jump: Option<String> = None;
        for (k, v) in map.range::<String, _>((lower.clone(), Bound::Unbounded)) {
            if !k.starts_with(q.prefix) {
                // Keys with the prefix are contiguous; past them there is nothing more.
                break 'scan;
            }
            let rolled = delimiter.and_then(|d| {
                k[q.prefix.len()..]
                    .find(d)
                    .map(|i| k[..q.prefix.len() + i + d.len()].to_string())
            });
            let item = match rolled {
                Some(cp) => {
                    // A marker inside this common prefix means the prefix was already returned.
                    if cp.as_str() <= q.marker
                        || matches!(items.last(), Some(Item::Prefix(p)) if *p == cp)
                    {
                        continue;
                    }
                    Item::Prefix(cp)
                }
                None => Item::Object(k.clone(), v),
            };
            if items.len() == q.max_keys {
                truncated = true;
                break 'scan;
            }
            if let Item::Prefix(cp) = &item {
                // Skip every key under this prefix without visiting it.
                let mut after = cp.clone();
                after.push_str("\u{10FFFF}\u{10FFFF}\u{10FFFF}");
                jump = Some(after);
                items.push(item);
                break;
            }
            items.push(item);
        }
        match jump {
            Some(j) => lower = Bound::Excluded(j),
            None => break,
        }
    }
    let next_marker = if truncated {
        items.last().map(|i| i.name().to_string())
    } else {
        None
    };
    Page {
        items,
        truncated,
        next_marker,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(keys: &[&str]) -> BTreeMap<String, ()> {
        keys.iter().map(|k| (k.to_string(), ())).collect()
    }

    fn names(p: &Page<&()>) -> Vec<String> {
        p.items
            .iter()
            .map(|i| match i {
                Item::Object(k, _) => k.clone(),
                Item::Prefix(p) => format!("P:{p}"),
            })
            .collect()
    }

    fn q<'a>(
        prefix: &'a str,
        delim: Option<&'a str>,
        marker: &'a str,
        max: usize,
    ) -> ListQuery<'a> {
        ListQuery {
            prefix,
            delimiter: delim,
            marker,
            max_keys: max,
        }
    }

    #[test]
    fn rolls_up_common_prefixes_and_keeps_the_marker_object() {
        let m = map(&[
            "a.txt",
            "dir/",
            "dir/x",
            "dir/sub/y",
            "dir/sub/z",
            "dir/z",
            "e/f",
            "zz",
        ]);
        let p = list(&m, &q("dir/", Some("/"), "", 1000));
        assert_eq!(names(&p), ["dir/", "P:dir/sub/", "dir/x", "dir/z"]);
        assert!(!p.truncated && p.next_marker.is_none());
        let root = list(&m, &q("", Some("/"), "", 1000));
        assert_eq!(names(&root), ["a.txt", "P:dir/", "P:e/", "zz"]);
    }

    #[test]
    fn paginates_with_next_marker() {
        let m = map(&["a", "b/1", "b/2", "c", "d"]);
        let mut marker = String::new();
        let mut all = Vec::new();
        loop {
            let p = list(&m, &q("", Some("/"), &marker, 2));
            all.extend(names(&p));
            if !p.truncated {
                break;
            }
            marker = p.next_marker.expect("truncated pages carry NextMarker");
        }
        assert_eq!(all, ["a", "P:b/", "c", "d"]);
        // Exactly max-keys entries left: not truncated.
        let p = list(&m, &q("", None, "b/2", 2));
        assert_eq!(names(&p), ["c", "d"]);
        assert!(!p.truncated);
    }

    #[test]
    fn flat_listing_with_prefix_and_marker() {
        let m = map(&["p/1", "p/2", "p/3", "q"]);
        let p = list(&m, &q("p/", None, "p/1", 1000));
        assert_eq!(names(&p), ["p/2", "p/3"]);
        let p = list(&m, &q("p/", None, "", 0));
        assert!(p.items.is_empty());
        let p = list(&m, &q("nothing", Some("/"), "", 10));
        assert!(p.items.is_empty() && !p.truncated);
    }
}
