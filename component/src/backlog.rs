//! Backpressure for requests: a bounded number in flight, a bounded FIFO queue of the others.
//!
//! The session's read loop owns the [`Backlog`]: it offers each request (never waiting, so
//! reading the stream never blocks on the queue), starts what [`Backlog::next_ready`] hands
//! out, and awaits [`Backlog::ready`] alongside its reads for the queue's head to get a slot.
//! Queued requests hold no slot. Only the owner acquires slots (handlers just release theirs),
//! and it hands them out strictly in arrival order.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// In-flight slots plus the requests waiting, in arrival order, for one.
#[derive(Debug)]
pub struct Backlog<T> {
    slots: Arc<Semaphore>,
    waiting: VecDeque<T>,
    max_queued: usize,
}

impl<T> Backlog<T> {
    /// `max_in_flight` slots (at least 1, at most [`Semaphore::MAX_PERMITS`]) and room for `max_queued` waiting.
    pub fn new(max_in_flight: usize, max_queued: usize) -> Self {
        let slots = Arc::new(Semaphore::new(max_in_flight.clamp(1, Semaphore::MAX_PERMITS)));
        Self { slots, waiting: VecDeque::new(), max_queued }
    }

    /// Queues `item` behind every earlier one, or gives it back when the queue is full (once
    /// the free slots have taken their share). Never waits. Take what can start with
    /// [`Self::next_ready`] afterwards.
    pub fn offer(&mut self, item: T) -> Result<(), T> {
        if self.waiting.len() >= self.max_queued.saturating_add(self.slots.available_permits()) {
            return Err(item);
        }
        self.waiting.push_back(item);
        Ok(())
    }

    /// The oldest waiting item with its slot, if one is free now.
    pub fn next_ready(&mut self) -> Option<(T, OwnedSemaphorePermit)> {
        if self.waiting.is_empty() {
            return None;
        }
        let permit = self.slots.clone().try_acquire_owned().ok()?;
        self.waiting.pop_front().map(|item| (item, permit))
    }

    /// Waits for a slot and returns it with the oldest waiting item; `None` when nothing waits.
    ///
    /// Cancel safe: a cancelled call takes nothing out of the queue.
    pub async fn ready(&mut self) -> Option<(T, OwnedSemaphorePermit)> {
        if self.waiting.is_empty() {
            return None;
        }
        // The semaphore is never closed, so acquiring fails never; if it did, nothing is lost.
        let permit = self.slots.clone().acquire_owned().await.ok()?;
        self.waiting.pop_front().map(|item| (item, permit))
    }

    /// How many items wait.
    pub fn queued(&self) -> usize {
        self.waiting.len()
    }

    /// Whether any item waits.
    pub fn has_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Takes every waiting item out, oldest first.
    pub fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.waiting.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Offers `item` and starts what can start, like the session does.
    fn offer_and_start<T>(backlog: &mut Backlog<T>, item: T) -> Result<Vec<(T, OwnedSemaphorePermit)>, T> {
        backlog.offer(item)?;
        Ok(std::iter::from_fn(|| backlog.next_ready()).collect())
    }

    fn items<T: Copy>(started: &[(T, OwnedSemaphorePermit)]) -> Vec<T> {
        started.iter().map(|(item, _)| *item).collect()
    }

    #[test]
    fn fills_the_slots_then_the_queue_then_refuses() {
        let mut backlog = Backlog::new(2, 3);
        let mut running = Vec::new();
        for i in 0..2 {
            let started = offer_and_start(&mut backlog, i).expect("a free slot");
            assert_eq!(items(&started), vec![i]);
            running.extend(started);
        }
        for i in 2..5 {
            assert!(offer_and_start(&mut backlog, i).expect("room in the queue").is_empty(), "{i} started");
        }
        assert_eq!(backlog.queued(), 3);
        assert_eq!(offer_and_start(&mut backlog, 5).map(|s| items(&s)), Err(5));
        assert_eq!(backlog.queued(), 3, "a refusal leaves the queue as it was");
        // One slot frees: the oldest waiting starts, and there is room for one more again.
        drop(running.remove(0));
        let started = std::iter::from_fn(|| backlog.next_ready()).collect::<Vec<_>>();
        assert_eq!(items(&started), vec![2]);
        running.extend(started);
        assert!(offer_and_start(&mut backlog, 6).expect("room again").is_empty());
        assert_eq!(backlog.drain().collect::<Vec<_>>(), vec![3, 4, 6]);
        assert!(!backlog.has_waiting());
    }

    #[test]
    fn a_free_slot_goes_to_the_oldest_waiting_item_not_the_newcomer() {
        let mut backlog = Backlog::new(1, 2);
        let first = offer_and_start(&mut backlog, 'a').expect("slot");
        assert!(offer_and_start(&mut backlog, 'b').expect("queued").is_empty());
        drop(first);
        // The slot is free but not yet handed out: the newcomer queues behind 'b', which starts.
        let started = offer_and_start(&mut backlog, 'c').expect("queued");
        assert_eq!(items(&started), vec!['b']);
        assert_eq!(backlog.drain().collect::<Vec<_>>(), vec!['c']);
    }

    #[test]
    fn a_full_queue_still_counts_the_slots_freed_meanwhile() {
        let mut backlog = Backlog::new(1, 1);
        let first = offer_and_start(&mut backlog, 1).expect("slot");
        assert!(offer_and_start(&mut backlog, 2).expect("queued").is_empty());
        drop(first);
        // Queue full, but 2 is about to take the freed slot: 3 is queued, not refused.
        let started = offer_and_start(&mut backlog, 3).expect("queued");
        assert_eq!(items(&started), vec![2]);
        assert_eq!(offer_and_start(&mut backlog, 4).map(|s| items(&s)), Err(4));
    }

    #[test]
    fn without_a_queue_only_free_slots_admit() {
        let mut backlog = Backlog::new(1, 0);
        let first = offer_and_start(&mut backlog, 1).expect("slot");
        assert_eq!(items(&first), vec![1]);
        assert_eq!(offer_and_start(&mut backlog, 2).map(|s| items(&s)), Err(2));
        drop(first);
        assert_eq!(items(&offer_and_start(&mut backlog, 3).expect("slot again")), vec![3]);
    }

    #[tokio::test(start_paused = true)]
    async fn ready_waits_for_a_slot_and_serves_in_arrival_order() {
        let mut backlog = Backlog::new(1, 8);
        assert!(backlog.ready().await.is_none(), "nothing waits");
        let first = offer_and_start(&mut backlog, 0).expect("slot").pop().expect("started");
        for i in 1..=3 {
            backlog.offer(i).expect("queued");
        }
        // A cancelled wait takes nothing out.
        let waited = tokio::time::timeout(std::time::Duration::from_secs(1), backlog.ready()).await;
        assert!(waited.is_err(), "no slot is free");
        assert_eq!(backlog.queued(), 3);
        let mut order = Vec::new();
        let mut slot = first.1;
        for _ in 1..=3 {
            let release = tokio::spawn(async move { drop(slot) });
            let (item, permit) = backlog.ready().await.expect("an item");
            release.await.expect("join");
            order.push(item);
            slot = permit;
        }
        assert_eq!(order, vec![1, 2, 3]);
        assert!(!backlog.has_waiting());
    }
}
