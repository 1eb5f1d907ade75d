//! Reading a `text/event-stream` (server-sent events, as
//! `GET /eth/v1/events` sends them): lines split across chunks, `event:` and
//! `data:` fields, an event dispatched at each blank line, comments (`:`)
//! skipped. Lines and events are bounded.

/// The longest line accepted; Beacon API events other than blocks are a
/// few hundred bytes.
pub const MAX_EVENT_LINE_BYTES: usize = 64 * 1024;

/// The most `data:` lines one event may have.
pub const MAX_DATA_LINES: usize = 16;

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEvent {
    /// Its `event:` name (`message` when it has none).
    pub event: String,
    /// Its `data:` lines, joined by newlines.
    pub data: String,
}

/// Why a stream cannot be read as server-sent events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A line passed [`MAX_EVENT_LINE_BYTES`].
    #[error("event stream line longer than {MAX_EVENT_LINE_BYTES} bytes")]
    LineTooLong,
    /// An event passed [`MAX_DATA_LINES`].
    #[error("event with more than {MAX_DATA_LINES} data lines")]
    TooManyDataLines,
}

/// Turns the chunks of a stream into events.
#[derive(Debug, Default)]
pub struct EventParser {
    line: Vec<u8>,
    event: String,
    data: Vec<String>,
}

impl EventParser {
    /// Reads `bytes` and returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<ServerEvent>, SseError> {
        let mut events = Vec::new();
        for &byte in bytes {
            if byte != b'\n' {
                if self.line.len() >= MAX_EVENT_LINE_BYTES {
                    return Err(SseError::LineTooLong);
                }
                self.line.push(byte);
                continue;
            }
            let line = String::from_utf8_lossy(&self.line)
                .trim_end_matches('\r')
                .to_string();
            self.line.clear();
            if line.is_empty() {
                if !self.data.is_empty() {
                    let event = std::mem::take(&mut self.event);
                    events.push(ServerEvent {
                        event: if event.is_empty() {
                            "message".into()
                        } else {
                            event
                        },
                        data: std::mem::take(&mut self.data).join("\n"),
                    });
                }
                self.event.clear();
            } else if let Some(name) = line.strip_prefix("event:") {
                self.event = name.trim().to_string();
            } else if let Some(data) = line.strip_prefix("data:") {
                if self.data.len() >= MAX_DATA_LINES {
                    return Err(SseError::TooManyDataLines);
                }
                self.data
                    .push(data.strip_prefix(' ').unwrap_or(data).to_string());
            }
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks() {
        let stream = b"event: head\ndata: {\"slot\":\"17\",\"block\":\"0x00\"}\n\n: keep-alive\n\nevent: block\ndata: {\"slot\":\"99\"}\n\nevent: head\r\ndata: {\"slot\":\"24\"}\r\n\r\n";
        let mut parser = EventParser::default();
        let mut events = Vec::new();
        for chunk in stream.chunks(7) {
            events.extend(parser.push(chunk).unwrap());
        }
        let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(names, vec!["head", "block", "head"]);
        assert_eq!(events[2].data, "{\"slot\":\"24\"}");
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut parser = EventParser::default();
        assert_eq!(
            parser.push(&vec![b'x'; MAX_EVENT_LINE_BYTES + 1]),
            Err(SseError::LineTooLong)
        );
    }
}
