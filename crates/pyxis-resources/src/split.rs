//! Splits a multi-document YAML stream at `---` / `...` markers, keeping each document's place in the file.
//!
//! Each document is parsed on its own so that a broken one does not hide the others, and so that serde can be run
//! twice on it (once untyped to find its kind, once typed). Its text is preceded by as many newlines as lines came
//! before it, which makes the line numbers in serde's errors those of the whole file.

/// One document of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Document {
    /// 1-based line of the document's first line that is not blank, a comment or a directive.
    pub first_line: usize,
    /// The document's text, preceded by one newline per earlier line of the file.
    pub padded: String,
    /// The document's lines with their 1-based line numbers (a `---` marker blanked out, line ends removed).
    pub lines: Vec<(usize, String)>,
}

impl Document {
    /// 1-based column of the document's first content.
    pub fn first_column(&self) -> Option<usize> {
        let line = &self.lines.iter().find(|(n, _)| *n == self.first_line)?.1;
        Some(line.len() - line.trim_start().len() + 1)
    }
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

/// Whether a line carries YAML content (not blank, not a comment, not a directive).
pub(crate) fn is_content(line: &str) -> bool {
    let t = line.trim_start();
    !(t.is_empty() || t.starts_with('#') || line.starts_with('%'))
}

#[derive(Default)]
struct Chunk {
    start: usize,
    text: String,
    lines: Vec<(usize, String)>,
}

impl Chunk {
    fn starting_at(start: usize) -> Self {
        Chunk {
            start,
            ..Chunk::default()
        }
    }

    fn push(&mut self, number: usize, raw: &str, line: &str) {
        self.text.push_str(raw);
        self.lines.push((number, line.to_string()));
    }

    fn finish(self, out: &mut Vec<Document>) {
        let Some(first_line) = self.lines.iter().find(|(_, l)| is_content(l)).map(|(n, _)| *n) else {
            return;
        };
        let mut padded = "\n".repeat(self.start);
        padded.push_str(&self.text);
        out.push(Document {
            first_line,
            padded,
            lines: self.lines,
        });
    }
}

/// The non-empty documents of `src`, in order.
pub(crate) fn split(src: &str) -> Vec<Document> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let mut docs = Vec::new();
    let mut chunk = Chunk::starting_at(0);
    for (i, raw) in src.split_inclusive('\n').enumerate() {
        let line = raw.trim_end_matches(['\n', '\r']);
        if is_marker(line, "---") {
            std::mem::replace(&mut chunk, Chunk::starting_at(i)).finish(&mut docs);
            // Keep what follows the marker on its line (`--- # comment`), at its column.
            let blanked = format!("   {}", &raw[3..]);
            chunk.push(i + 1, &blanked, &format!("   {}", &line[3..]));
        } else if is_marker(line, "...") {
            std::mem::replace(&mut chunk, Chunk::starting_at(i + 1)).finish(&mut docs);
        } else {
            chunk.push(i + 1, raw, line);
        }
    }
    chunk.finish(&mut docs);
    docs
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn splits_and_pads() {
        let src = "---\n# c\n\na: 1\n---\n---  # empty\n\nb: 2\r\n...\n%YAML 1.2\n---\nc: 3\n";
        let docs = split(src);
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0].first_line, 4);
        assert_eq!(docs[0].padded, "   \n# c\n\na: 1\n");
        assert_eq!(docs[1].first_line, 8);
        assert_eq!(docs[1].padded, "\n\n\n\n\n     # empty\n\nb: 2\r\n");
        assert_eq!(docs[1].lines[2], (8, "b: 2".to_string()));
        assert_eq!(docs[2].first_line, 12);
    }

    #[test]
    fn no_markers_and_empty() {
        assert_eq!(split("a: 1").len(), 1);
        assert!(split("").is_empty());
        assert!(split("---\n# nothing\n---\n").is_empty());
    }
}
