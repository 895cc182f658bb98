//! Run admission: at most `max` runs execute at once; when a slot frees, the waiting run
//! with the highest priority gets it (first come, first served within a priority).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

pub struct Admission {
    state: Mutex<State>,
}

struct State {
    max: usize,
    running: usize,
    next_ticket: u64,
    waiting: BinaryHeap<Waiter>,
}

struct Waiter {
    priority: i64,
    ticket: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Waiter) -> bool {
        self.priority == other.priority && self.ticket == other.ticket
    }
}
impl Eq for Waiter {}
impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Waiter) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiter {
    /// Higher priority first, then the earlier ticket.
    fn cmp(&self, other: &Waiter) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.ticket.cmp(&self.ticket))
    }
}

/// A run's slot; dropping it admits the next waiting run.
pub struct Permit {
    admission: Arc<Admission>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.admission.release();
    }
}

struct Wait {
    rx: Option<oneshot::Receiver<()>>,
    admission: Arc<Admission>,
}

impl Drop for Wait {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take()
            && rx.try_recv().is_ok()
        {
            self.admission.release();
        }
    }
}

impl Admission {
    pub fn new(max: usize) -> Arc<Admission> {
        Arc::new(Admission {
            state: Mutex::new(State {
                max: max.max(1),
                running: 0,
                next_ticket: 0,
                waiting: BinaryHeap::new(),
            }),
        })
    }

    /// Waits for a slot.
    pub async fn acquire(self: &Arc<Admission>, priority: i64) -> Permit {
        let rx = {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if s.running < s.max && s.waiting.is_empty() {
                s.running += 1;
                return Permit {
                    admission: Arc::clone(self),
                };
            }
            let (wake, rx) = oneshot::channel();
            let ticket = s.next_ticket;
            s.next_ticket += 1;
            s.waiting.push(Waiter {
                priority,
                ticket,
                wake,
            });
            rx
        };
        // The slot is handed over (`running` already counts it) when the sender fires. If
        // this future is dropped after a hand-over it never saw, the wait's guard gives
        // the slot back.
        let mut wait = Wait {
            rx: Some(rx),
            admission: Arc::clone(self),
        };
        let rx = wait.rx.as_mut();
        if let Some(rx) = rx {
            let _ = rx.await;
        }
        wait.rx = None;
        Permit {
            admission: Arc::clone(self),
        }
    }

    fn release(&self) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(w) = s.waiting.pop() {
            if w.wake.send(()).is_ok() {
                // The slot passes to `w` without changing `running`.
                return;
            }
        }
        s.running = s.running.saturating_sub(1);
    }

    /// Runs executing now.
    pub fn running(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn higher_priority_waiters_are_admitted_first() {
        let adm = Admission::new(1);
        let first = adm.acquire(0).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, prio) in [("low", 0), ("high", 2), ("normal", 1), ("high2", 2)] {
            let adm = Arc::clone(&adm);
            let order = Arc::clone(&order);
            tasks.push(tokio::spawn(async move {
                let _p = adm.acquire(prio).await;
                order.lock().unwrap().push(name);
            }));
            tokio::task::yield_now().await;
        }
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            vec!["high", "high2", "normal", "low"]
        );
        assert_eq!(adm.running(), 0);
    }

    #[tokio::test]
    async fn at_most_max_run_at_once() {
        let adm = Admission::new(2);
        let a = adm.acquire(0).await;
        let _b = adm.acquire(0).await;
        let adm2 = Arc::clone(&adm);
        let waiting = tokio::spawn(async move { adm2.acquire(0).await });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        assert_eq!(adm.running(), 2);
        drop(a);
        let _c = waiting.await.unwrap();
        assert_eq!(adm.running(), 2);
    }
}
