//! Shutdown signalling: one [`Trigger`], any number of [`Shutdown`] listeners.

use tokio::sync::watch;

/// Fires the shutdown once; dropping it fires it too.
#[derive(Debug)]
pub struct Trigger {
    tx: watch::Sender<bool>,
}

/// Tells a task that it should stop taking work.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger { tx }, Shutdown { rx })
}

impl Trigger {
    pub fn fire(&self) {
        let _ = self.tx.send(true);
    }
}

impl Shutdown {
    /// A listener that never fires (one-shot commands).
    pub fn never() -> Shutdown {
        let (tx, rx) = watch::channel(false);
        // Keep the sender alive forever so `wait` never returns.
        std::mem::forget(tx);
        Shutdown { rx }
    }

    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Returns once shutdown was fired (or its trigger dropped).
    pub async fn wait(&mut self) {
        let _ = self.rx.wait_for(|v| *v).await;
    }
}
