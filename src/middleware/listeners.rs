//! In-process fan-out of what a middleware did (combined duties, answered
//! selections) to whoever listens: metrics, the devnet's judge, tests. A
//! listener that went away is forgotten at the next send.

use std::sync::{Mutex, PoisonError};

use tokio::sync::mpsc;

/// The listeners of one kind of event, each with its own unbounded channel.
pub struct Listeners<T> {
    senders: Mutex<Vec<mpsc::UnboundedSender<T>>>,
}

impl<T: Clone> Listeners<T> {
    /// No listener yet.
    pub fn new() -> Self {
        Listeners {
            senders: Mutex::new(Vec::new()),
        }
    }

    /// A channel that receives every later event.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<T> {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.senders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(sender);
        receiver
    }

    /// Whether nobody listens (so that an event need not be built).
    pub fn is_empty(&self) -> bool {
        self.senders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    /// Sends `event` to every listener still there.
    pub fn send(&self, event: T) {
        self.senders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|sender| sender.send(event.clone()).is_ok());
    }
}

impl<T: Clone> Default for Listeners<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listener_gets_each_event_and_a_dropped_one_is_forgotten() {
        let listeners = Listeners::new();
        assert!(listeners.is_empty());
        let mut first = listeners.subscribe();
        let second = listeners.subscribe();
        listeners.send(1);
        drop(second);
        listeners.send(2);
        assert_eq!((first.try_recv(), first.try_recv()), (Ok(1), Ok(2)));
        assert_eq!(listeners.senders.lock().unwrap().len(), 1);
    }
}
