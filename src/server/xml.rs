//! XML for coslocal: escaping for the response documents it writes, and a small element
//! tree parser for the request bodies it reads (Complete Multipart Upload, Delete Multiple).

use quick_xml::events::Event;
use quick_xml::Reader;

/// The XML declaration COS puts before its documents.
pub const DECL: &str = "<?xml version='1.0' encoding='utf-8' ?>\n";

/// Escapes text for an element body.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
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
    out.push_str(&esc(text));
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// A parsed element: name (namespace prefix dropped), text content, children.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    /// The first child called `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child called `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
}

fn local_name(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    match s.rsplit_once(':') {
        Some((_, l)) => l.to_string(),
        None => s.into_owned(),
    }
}

/// Parses a whole document into its root element. `Err` is a message for MalformedXML.
pub fn parse(body: &[u8]) -> Result<Element, String> {
    let text = std::str::from_utf8(body).map_err(|_| "body is not UTF-8".to_string())?;
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => stack.push(Element {
                name: local_name(e.name().as_ref()),
                ..Element::default()
            }),
            Ok(Event::Empty(e)) => {
                let el = Element {
                    name: local_name(e.name().as_ref()),
                    ..Element::default()
                };
                match stack.last_mut() {
                    Some(p) => p.children.push(el),
                    None => root = Some(el),
                }
            }
            Ok(Event::Text(t)) => {
                let s = t.unescape().map_err(|e| format!("bad XML text: {e}"))?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&s);
                }
            }
            Ok(Event::CData(t)) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Ok(Event::End(_)) => {
                let el = stack.pop().ok_or("unbalanced end tag")?;
                match stack.last_mut() {
                    Some(p) => p.children.push(el),
                    None => root = Some(el),
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(format!("malformed XML: {e}")),
        }
    }
    if !stack.is_empty() {
        return Err("unterminated element".into());
    }
    root.ok_or_else(|| "empty XML document".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_complete_body_and_unescapes() {
        let doc = br#"<?xml version="1.0"?><CompleteMultipartUpload xmlns="x">
            <Part><PartNumber>1</PartNumber><ETag>&quot;abc&quot;</ETag></Part>
            <Part><PartNumber>2</PartNumber><ETag>"def"</ETag></Part></CompleteMultipartUpload>"#;
        let root = parse(doc).expect("parses");
        assert_eq!(root.name, "CompleteMultipartUpload");
        let parts: Vec<_> = root.children_named("Part").collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[0].child("ETag").map(|e| e.text.as_str()),
            Some("\"abc\"")
        );
        assert_eq!(
            parts[1].child("PartNumber").map(|e| e.text.as_str()),
            Some("2")
        );
    }

    #[test]
    fn refuses_broken_documents() {
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"").is_err());
        assert!(parse(b"<a><b>").is_err());
    }

    #[test]
    fn escapes_markup() {
        let mut s = String::new();
        elem(&mut s, "Key", "a<b>&\"c'");
        assert_eq!(s, "<Key>a&lt;b&gt;&amp;&quot;c&apos;</Key>");
    }
}
