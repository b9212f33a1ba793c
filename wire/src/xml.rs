//! XML as COS speaks it, for both sides: an element tree parser bounded in depth and size,
//! and text escaping.
//!
//! The tree is keyed by *local* names, so an `xmlns` (which some COS documents carry) or a
//! prefix never changes what a reader finds. Leading whitespace is skipped because Complete
//! streams spaces before its XML. Nesting depth and element count are bounded: the parser's
//! loop does not recurse, but the tree it builds is dropped (and compared, printed)
//! recursively, so a document nested tens of thousands deep would overflow the stack of
//! whoever frees it. COS's documents are three levels deep.

use quick_xml::events::Event;
use quick_xml::Reader;

/// The XML declaration COS puts before its documents.
pub const DECL: &str = "<?xml version='1.0' encoding='utf-8' ?>\n";

/// Deepest element nesting accepted (the root is depth 1; COS documents need 3).
pub const MAX_DEPTH: usize = 32;
/// Most elements accepted in one document: a Complete of 10,000 parts has 30,001, a
/// listing page of 1,000 objects about 8,000.
pub const MAX_ELEMENTS: usize = 100_000;

/// One element: its local name, its own text (concatenated) and its child elements.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    /// The first child element called `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child element called `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of the first child called `name`.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }
}

fn local_name(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    match s.rsplit_once(':') {
        Some((_, l)) => l.to_string(),
        None => s.into_owned(),
    }
}

/// Parses a whole document into its root element. `Err` says what is wrong with it.
pub fn parse(body: &[u8]) -> Result<Element, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("XML is not UTF-8: {e}"))?;
    let mut reader = Reader::from_str(text.trim_start());
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut elements = 0usize;
    // Bounded: every turn consumes input or ends (quick-xml reports Eof at the end).
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("malformed XML at byte {}: {e}", reader.buffer_position()))?;
        if let Event::Start(_) | Event::Empty(_) = &event {
            if root.is_some() {
                return Err("more than one root element".into());
            }
            if stack.len() >= MAX_DEPTH {
                return Err(format!("elements nested deeper than {MAX_DEPTH}"));
            }
            elements += 1;
            if elements > MAX_ELEMENTS {
                return Err(format!("more than {MAX_ELEMENTS} elements"));
            }
        }
        match event {
            Event::Start(e) => stack.push(Element {
                name: local_name(e.name().as_ref()),
                ..Element::default()
            }),
            Event::Empty(e) => {
                let el = Element {
                    name: local_name(e.name().as_ref()),
                    ..Element::default()
                };
                match stack.last_mut() {
                    Some(p) => p.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    let s = t.unescape().map_err(|e| format!("bad XML text: {e}"))?;
                    top.text.push_str(&s);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or("unbalanced end tag")?;
                match stack.last_mut() {
                    Some(p) => p.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err("XML document ended inside an element".into());
    }
    root.ok_or_else(|| "empty XML document".into())
}

/// Whether XML 1.0 can carry `s` at all: most control characters cannot appear in a
/// document, not even as character references.
pub fn can_carry(s: &str) -> bool {
    !s.chars().any(|c| {
        ((c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r'))
            || c == '\u{FFFE}'
            || c == '\u{FFFF}'
    })
}

/// Escapes text for an element body. Tab, newline and carriage return become character
/// references so a parser's line-end normalisation cannot change them. What XML cannot
/// carry (see [`can_carry`]) is passed through: checking is the writer's decision.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push_str(&format!("&#{};", c as u32)),
            _ => out.push(c),
        }
    }
    out
}

/// Appends `<name>escaped text</name>`.
pub fn elem(out: &mut String, name: &str, text: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    out.push_str(&escape(text));
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_namespaces_entities_and_leading_spaces() {
        let doc = br#"

        <?xml version="1.0"?><CompleteMultipartUpload xmlns="x">
            <Part><PartNumber>1</PartNumber><ETag>&quot;abc&quot;</ETag></Part>
            <p:Part><PartNumber>2</PartNumber><ETag><![CDATA["def"]]></ETag></p:Part></CompleteMultipartUpload>"#;
        let root = parse(doc).expect("parses");
        assert_eq!(root.name, "CompleteMultipartUpload");
        let parts: Vec<_> = root.all("Part").collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].text_of("ETag"), Some("\"abc\""));
        assert_eq!(parts[1].text_of("ETag"), Some("\"def\""));
        assert_eq!(parts[1].text_of("PartNumber"), Some("2"));
    }

    #[test]
    fn refuses_broken_documents() {
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"").is_err());
        assert!(parse(b"   ").is_err());
        assert!(parse(b"<a><b>").is_err());
        assert!(parse(b"\xff<a/>").is_err());
    }

    fn nested(depth: usize, innermost: &str) -> String {
        let mut s = "<a>".repeat(depth - 1);
        s.push_str(innermost);
        s.push_str(&"</a>".repeat(depth - 1));
        s
    }

    #[test]
    fn depth_is_bounded_at_both_element_forms() {
        // MAX_DEPTH levels parse; one more, as a start tag or an empty tag, does not.
        let ok = parse(nested(MAX_DEPTH, "<b>x</b>").as_bytes()).expect("at the limit");
        let mut depth = 1;
        let mut el = &ok;
        while let Some(c) = el.children.first() {
            depth += 1;
            el = c;
        }
        assert_eq!((depth, el.text.as_str()), (MAX_DEPTH, "x"));
        assert!(parse(nested(MAX_DEPTH, "<b/>").as_bytes()).is_ok());
        for inner in ["<b><c/></b>", "<b><c></c></b>"] {
            let e = parse(nested(MAX_DEPTH, inner).as_bytes()).expect_err("too deep");
            assert!(e.contains("nested deeper"), "{e}");
        }
    }

    #[test]
    fn very_deep_documents_are_refused_without_recursion() {
        // 50,000 levels: building, dropping or printing such a tree recursively would
        // overflow this thread's stack; the parser must stop at MAX_DEPTH instead.
        let deep = nested(50_000, "");
        assert!(parse(deep.as_bytes()).is_err());
        let unterminated = "<a>".repeat(50_000);
        assert!(parse(unterminated.as_bytes()).is_err());
    }

    #[test]
    fn element_count_and_roots_are_bounded() {
        let wide = format!("<r>{}</r>", "<k/>".repeat(MAX_ELEMENTS - 1));
        assert_eq!(
            parse(wide.as_bytes()).expect("at the limit").children.len(),
            MAX_ELEMENTS - 1
        );
        let wider = format!("<r>{}</r>", "<k/>".repeat(MAX_ELEMENTS));
        assert!(parse(wider.as_bytes())
            .expect_err("too many")
            .contains("elements"));
        assert!(parse(b"<a/><b/>").is_err());
        assert!(parse(b"<a></a><b></b>").is_err());
        assert!(parse(b"<a></a>\n  ").is_ok());
    }

    #[test]
    fn escaping_round_trips_and_marks_what_xml_cannot_carry() {
        let mut s = String::new();
        elem(&mut s, "Key", "a<b>&\"c'\t\r\nz");
        assert_eq!(s, "<Key>a&lt;b&gt;&amp;&quot;c&apos;&#9;&#13;&#10;z</Key>");
        assert_eq!(parse(s.as_bytes()).unwrap().text, "a<b>&\"c'\t\r\nz");
        assert!(can_carry("tab\there ü"));
        assert!(!can_carry("bell\u{7}"));
        assert!(!can_carry("\u{FFFE}"));
    }
}
