//! Finds the line and column of a key path (`spec.runtimes[1]`) in a document's text, for errors that serde
//! cannot locate. Best effort: block style is followed exactly, flow sequences on one line as well; anything else
//! yields the deepest part of the path that was found.

/// One step of a path into a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

type Lines = Vec<(usize, String)>;

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_content(line: &str) -> bool {
    let t = line.trim_start();
    !(t.is_empty() || t.starts_with('#'))
}

fn is_item(line: &str, ind: usize) -> bool {
    line[ind..] == *"-" || line[ind..].starts_with("- ")
}

/// The lines nested under line `at` (more indented than `ind`), blank and comment lines included. Under a key
/// (`dash_items`), a sequence's `- ` items may also sit at the key's own indentation.
fn block_after(lines: &[(usize, String)], at: usize, ind: usize, dash_items: bool) -> Lines {
    lines[at + 1..]
        .iter()
        .take_while(|(_, l)| !is_content(l) || indent(l) > ind || (dash_items && indent(l) == ind && is_item(l, ind)))
        .cloned()
        .collect()
}

/// If `content` is `key: rest` (the key bare or quoted), returns `rest`.
fn strip_key<'a>(content: &'a str, key: &str) -> Option<&'a str> {
    let after = content
        .strip_prefix(key)
        .or_else(|| {
            content
                .strip_prefix('"')
                .and_then(|c| c.strip_prefix(key))
                .and_then(|c| c.strip_prefix('"'))
        })
        .or_else(|| {
            content
                .strip_prefix('\'')
                .and_then(|c| c.strip_prefix(key))
                .and_then(|c| c.strip_prefix('\''))
        })?;
    let rest = after.strip_prefix(':')?;
    (rest.is_empty() || rest.starts_with([' ', '\t'])).then_some(rest)
}

/// Column (1-based) of item `i` of a one-line flow sequence starting at byte `open` (the `[`) of `line`.
fn flow_item(line: &str, open: usize, i: usize) -> Option<usize> {
    let mut start = open + 1;
    let mut n = 0;
    for (off, c) in line[open + 1..].char_indices() {
        let pos = open + 1 + off;
        if c == ',' || c == ']' {
            if n == i {
                break;
            }
            n += 1;
            start = pos + 1;
            if c == ']' {
                return None;
            }
        }
    }
    let skip = line[start..].len() - line[start..].trim_start().len();
    Some(line[..start + skip].chars().count() + 1)
}

/// Line and column (both 1-based) of the deepest step of `path` found in `lines`.
pub(crate) fn locate(lines: &[(usize, String)], path: &[Seg<'_>]) -> Option<(usize, usize)> {
    walk(lines, path).0
}

/// The scalar written after the key at `path` (`kind: Model  # c` gives `Model`), when the whole path is found in
/// block style. Used to name a document that is not valid YAML.
pub(crate) fn scalar_at(lines: &[(usize, String)], path: &[Seg<'_>]) -> Option<String> {
    let (Some((no, col)), depth) = walk(lines, path) else {
        return None;
    };
    if depth != path.len() {
        return None;
    }
    let line = &lines.iter().find(|(n, _)| *n == no)?.1;
    let (_, value) = line.get(col - 1..)?.split_once(':')?;
    let value = value.split(" #").next().unwrap_or_default().trim();
    let unquoted = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(value);
    (!unquoted.is_empty()).then(|| unquoted.to_string())
}

/// The position of the deepest step of `path` found, and how many steps were found.
fn walk(lines: &[(usize, String)], path: &[Seg<'_>]) -> (Option<(usize, usize)>, usize) {
    let mut block: Lines = lines.to_vec();
    let mut found = None;
    let mut depth = 0;
    // The line of the last key found, and where its inline value starts, for flow sequences.
    let mut inline: Option<(usize, String, usize)> = None;
    for seg in path {
        let ind = block.iter().find(|(_, l)| is_content(l)).map(|(_, l)| indent(l));
        match (*seg, ind) {
            (Seg::Key(key), Some(ind)) => {
                let hit = block
                    .iter()
                    .position(|(_, l)| is_content(l) && indent(l) == ind && strip_key(&l[ind..], key).is_some());
                let Some(at) = hit else { break };
                let (no, line) = &block[at];
                found = Some((*no, ind + 1));
                depth += 1;
                inline = strip_key(&line[ind..], key).map(|rest| (*no, line.clone(), line.len() - rest.len()));
                block = block_after(&block, at, ind, true);
            }
            (Seg::Index(i), Some(ind)) => {
                let items: Vec<usize> = (0..block.len())
                    .filter(|&j| {
                        let l = &block[j].1;
                        is_content(l) && indent(l) == ind && is_item(l, ind)
                    })
                    .collect();
                let Some(&at) = items.get(i) else { break };
                let (no, line) = &block[at];
                let value = line[ind + 1..].len() - line[ind + 1..].trim_start().len();
                found = Some((*no, ind + 2 + value));
                depth += 1;
                let mut item = block_after(&block, at, ind, false);
                // The item's first line, with its dash as indentation, heads the item's own block.
                item.insert(0, (*no, format!("{} {}", " ".repeat(ind), &line[ind + 1..])));
                block = item;
                inline = None;
            }
            (Seg::Index(i), None) => {
                let Some((no, line, value_at)) = inline.take() else {
                    break;
                };
                let Some(open) = line[value_at..].find('[').map(|o| o + value_at) else {
                    break;
                };
                let Some(col) = flow_item(&line, open, i) else { break };
                found = Some((no, col));
                depth += 1;
                break;
            }
            (Seg::Key(_), None) => break,
        }
    }
    (found, depth)
}

#[cfg(test)]
mod tests {
    use super::{Seg, locate, scalar_at};

    fn lines(src: &str) -> Vec<(usize, String)> {
        src.lines().enumerate().map(|(i, l)| (i + 11, l.to_string())).collect()
    }

    #[test]
    fn block_paths() {
        let doc = lines(
            "kind: Model\nmetadata:\n  name: x\nspec:\n  # c\n  runtimes:\n  - a\n  -   b\n  accelerator:\n    \"type\": h100\n",
        );
        assert_eq!(locate(&doc, &[Seg::Key("kind")]), Some((11, 1)));
        assert_eq!(locate(&doc, &[Seg::Key("metadata"), Seg::Key("name")]), Some((13, 3)));
        assert_eq!(
            locate(&doc, &[Seg::Key("spec"), Seg::Key("runtimes"), Seg::Index(1)]),
            Some((18, 7))
        );
        assert_eq!(
            locate(&doc, &[Seg::Key("spec"), Seg::Key("accelerator"), Seg::Key("type")]),
            Some((20, 5))
        );
        // Missing steps give the deepest one found.
        assert_eq!(locate(&doc, &[Seg::Key("spec"), Seg::Key("nope")]), Some((14, 1)));
        assert_eq!(locate(&doc, &[Seg::Key("name")]), None);
    }

    #[test]
    fn scalars() {
        let doc = lines("kind: Model  # c\nmetadata:\n  name: 'x'\n  labels: {}\nspec: [a, b]\n");
        assert_eq!(scalar_at(&doc, &[Seg::Key("kind")]).as_deref(), Some("Model"));
        assert_eq!(
            scalar_at(&doc, &[Seg::Key("metadata"), Seg::Key("name")]).as_deref(),
            Some("x")
        );
        assert_eq!(scalar_at(&doc, &[Seg::Key("metadata")]), None);
        assert_eq!(scalar_at(&doc, &[Seg::Key("metadata"), Seg::Key("nope")]), None);
    }

    #[test]
    fn items_and_flow() {
        let doc = lines(
            "spec:\n  endpoints: [http://a, 'http://b' ]\n  list:\n    - name: a\n      x: 1\n    - name: b\n      x: 2\n",
        );
        assert_eq!(
            locate(&doc, &[Seg::Key("spec"), Seg::Key("endpoints"), Seg::Index(1)]),
            Some((12, 25))
        );
        assert_eq!(
            locate(&doc, &[Seg::Key("spec"), Seg::Key("endpoints"), Seg::Index(2)]),
            Some((12, 3))
        );
        assert_eq!(
            locate(
                &doc,
                &[Seg::Key("spec"), Seg::Key("list"), Seg::Index(1), Seg::Key("x")]
            ),
            Some((17, 7))
        );
    }
}
