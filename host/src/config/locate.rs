//! Where each key of a YAML document is written: a map from a key's path (`datasets[1].acceleration.engine`)
//! to its line and column, read from the parser's events, so an error found while reading the
//! typed config can name the line a user has to fix.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A line and column, both counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// The position of every key and value of a document, by path.
#[derive(Debug, Default, Clone)]
pub struct Locations(HashMap<String, Position>);

impl Locations {
    /// Reads `text`; a document the parser rejects has no locations (the typed reader reports
    /// the syntax error with its own position).
    pub fn of(text: &str) -> Self {
        let mut walker = Walker::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut walker, false).is_err() {
            return Self::default();
        }
        Self(walker.found)
    }

    /// The position of `path`, or of its nearest parent that has one.
    pub fn find(&self, path: &str) -> Option<Position> {
        let mut path = path;
        loop {
            if let Some(position) = self.0.get(path) {
                return Some(*position);
            }
            path = parent(path)?;
        }
    }
}

/// `a.b[2].c` → `a.b[2]` → `a.b` → `a` → none.
fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

enum Frame {
    Mapping { key: Option<String> },
    Sequence { index: usize },
}

#[derive(Default)]
struct Walker {
    stack: Vec<Frame>,
    found: HashMap<String, Position>,
}

impl Walker {
    fn path(&self) -> String {
        let mut path = String::new();
        for frame in &self.stack {
            match frame {
                Frame::Mapping { key: Some(key) } => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                }
                Frame::Mapping { key: None } => {}
                Frame::Sequence { index } => path.push_str(&format!("[{index}]")),
            }
        }
        path
    }

    /// Records the node starting at `mark` at the current path; returns true when the node is
    /// a mapping key (recorded as its own path, the value to come).
    fn node(&mut self, mark: Marker, key_text: Option<&str>) -> bool {
        let position = Position {
            line: mark.line(),
            column: mark.col() + 1,
        };
        if let (Some(Frame::Mapping { key }), Some(text)) = (self.stack.last_mut(), key_text)
            && key.is_none()
        {
            *key = Some(text.to_owned());
            let path = self.path();
            self.found.entry(path).or_insert(position);
            return true;
        }
        let path = self.path();
        self.found.entry(path).or_insert(position);
        false
    }

    /// After a value: the enclosing mapping waits for its next key, the sequence counts on.
    fn value_done(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Mapping { key }) => *key = None,
            Some(Frame::Sequence { index }) => *index += 1,
            None => {}
        }
    }
}

impl MarkedEventReceiver for Walker {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(text, ..) if self.node(mark, Some(&text)) => {}
            Event::Scalar(..) => self.value_done(),
            Event::Alias(_) => {
                self.node(mark, None);
                self.value_done();
            }
            Event::MappingStart(..) => {
                self.node(mark, None);
                self.stack.push(Frame::Mapping { key: None });
            }
            Event::SequenceStart(..) => {
                self.node(mark, None);
                self.stack.push(Frame::Sequence { index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.value_done();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_items_are_found_by_path() {
        let text = "plugin_dirs: [a, b]\ndatasets:\n  - name: x\n    acceleration:\n      engine: duckdb\n  - name: y\n    from: 'file:y.csv'\n";
        let at = Locations::of(text);
        let line = |p: &str| at.find(p).map(|p| p.line);
        assert_eq!(line("plugin_dirs"), Some(1));
        assert_eq!(line("datasets"), Some(2));
        assert_eq!(line("datasets[0].name"), Some(3));
        assert_eq!(line("datasets[0].acceleration.engine"), Some(5));
        assert_eq!(line("datasets[1]"), Some(6));
        assert_eq!(line("datasets[1].from"), Some(7));
        // An unknown path falls back to its nearest known parent.
        assert_eq!(line("datasets[0].acceleration.bogus"), Some(4));
        assert_eq!(
            at.find("datasets[0].acceleration.engine").unwrap().column,
            7
        );
    }
}
