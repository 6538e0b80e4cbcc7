//! The only XML writer in the crate. Element and attribute names are `&'static str`
//! (never data); every text and attribute value is escaped here, so no caller can
//! format user input into markup.

/// Builds an indented UTF-8 XML document that starts with the XML declaration
/// (declaration first, no BOM: the EWS Managed API rejects a body whose first node is
/// anything else).
pub struct XmlWriter {
    out: String,
    depth: usize,
}

impl Default for XmlWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl XmlWriter {
    /// Starts a document with `<?xml version="1.0" encoding="utf-8"?>`.
    pub fn new() -> Self {
        XmlWriter {
            out: String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"),
            depth: 0,
        }
    }

    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }

    fn start_tag(&mut self, name: &'static str, attrs: &[(&'static str, &str)], close: &str) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        for (key, value) in attrs {
            self.out.push(' ');
            self.out.push_str(key);
            self.out.push_str("=\"");
            push_escaped(&mut self.out, value, true);
            self.out.push('"');
        }
        self.out.push_str(close);
    }

    /// Opens an element that will contain child elements.
    pub fn open(&mut self, name: &'static str, attrs: &[(&'static str, &str)]) {
        self.start_tag(name, attrs, ">\n");
        self.depth += 1;
    }

    /// Closes the element opened last.
    pub fn close(&mut self, name: &'static str) {
        self.depth = self.depth.saturating_sub(1);
        self.indent();
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }

    /// Writes `<name attrs>text</name>` on one line (DavMail reads
    /// `<EwsUrl>` line by line).
    pub fn leaf_with(&mut self, name: &'static str, attrs: &[(&'static str, &str)], text: &str) {
        self.start_tag(name, attrs, ">");
        push_escaped(&mut self.out, text, false);
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }

    /// Writes `<name>text</name>` on one line.
    pub fn leaf(&mut self, name: &'static str, text: &str) {
        self.leaf_with(name, &[], text);
    }

    /// Writes `<name attrs />`.
    pub fn empty(&mut self, name: &'static str, attrs: &[(&'static str, &str)]) {
        self.start_tag(name, attrs, " />\n");
    }

    /// The finished document.
    pub fn finish(self) -> Vec<u8> {
        self.out.into_bytes()
    }
}

/// Escapes markup characters and replaces characters XML 1.0 cannot carry. Runs of plain
/// text are copied in one piece (this is the hottest loop of a settings answer).
fn push_escaped(out: &mut String, text: &str, attribute: bool) {
    out.reserve(text.len());
    let bytes = text.as_bytes();
    let mut plain_from = 0;
    let mut i = 0;
    // Every character that needs work is ASCII, or U+FFFE/U+FFFF (EF BF BE / EF BF BF), so
    // a byte scan finds them; the slices pushed always end on character boundaries.
    while let Some(&b) = bytes.get(i) {
        let (len, replacement) = match b {
            b'&' => (1, "&amp;"),
            b'<' => (1, "&lt;"),
            b'>' => (1, "&gt;"),
            b'"' if attribute => (1, "&quot;"),
            b'\'' if attribute => (1, "&apos;"),
            b'\t' if attribute => (1, "&#9;"),
            b'\n' if attribute => (1, "&#10;"),
            b'\r' if attribute => (1, "&#13;"),
            b'\t' | b'\n' | b'\r' => (0, ""),
            0..=0x1f => (1, "\u{FFFD}"),
            0xef if matches!(bytes.get(i + 1..i + 3), Some([0xbf, 0xbe | 0xbf])) => (3, "\u{FFFD}"),
            _ => (0, ""),
        };
        if len == 0 {
            i += 1;
            continue;
        }
        out.push_str(text.get(plain_from..i).unwrap_or_default());
        out.push_str(replacement);
        i += len;
        plain_from = i;
    }
    out.push_str(text.get(plain_from..).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_attributes_are_escaped() {
        let mut w = XmlWriter::new();
        w.open("Root", &[("a", "x\"<&'>")]);
        w.leaf("Name", "<script>&\u{1}");
        w.close("Root");
        let doc = String::from_utf8(w.finish()).unwrap();
        assert!(doc.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Root"));
        assert!(doc.contains("a=\"x&quot;&lt;&amp;&apos;&gt;\""));
        assert!(doc.contains("<Name>&lt;script&gt;&amp;\u{FFFD}</Name>"));
    }

    /// The straightforward char-by-char escaper the fast one must agree with.
    fn reference(text: &str, attribute: bool) -> String {
        let mut out = String::new();
        for c in text.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' if attribute => out.push_str("&quot;"),
                '\'' if attribute => out.push_str("&apos;"),
                '\t' | '\n' | '\r' if attribute => out.push_str(&format!("&#{};", c as u32)),
                '\t' | '\n' | '\r' => out.push(c),
                c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                    out.push('\u{FFFD}')
                }
                c => out.push(c),
            }
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn escaping_matches_the_reference(text in "(.|[&<>\"'\t\n\r\u{1}\u{FFFE}\u{FFFF}\u{FFFD}\u{EFBF}\u{1F}])*", attribute in proptest::bool::ANY) {
            let mut out = String::new();
            push_escaped(&mut out, &text, attribute);
            proptest::prop_assert_eq!(out, reference(&text, attribute));
        }
    }
}
