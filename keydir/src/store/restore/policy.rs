//! The guess limit as a pure function: given the stored count and lock, what an evaluation may do.

use crate::config::RestoreSettings;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// keydir's limit: how many failed guesses, and how long a lock lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Evaluations answered without a proof; the next one is refused and locks the account.
    pub max_attempts: i32,
    /// How long a lock lasts; `None`: until an admin unlocks.
    pub lock: Option<Duration>,
}

impl From<&RestoreSettings> for Policy {
    fn from(settings: &RestoreSettings) -> Self {
        // The settings bound max_attempts to 1..=1000.
        Self { max_attempts: i32::try_from(settings.max_attempts).unwrap_or(i32::MAX), lock: settings.lock }
    }
}

/// An account's count and lock, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    /// Failed guesses.
    pub attempts: i32,
    /// When it was locked.
    pub locked_at: Option<OffsetDateTime>,
}

/// An evaluation refused for the lock; `changed`: `state` locks the account now and must be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The state to keep.
    pub state: State,
    /// Whether it differs from the stored one.
    pub changed: bool,
}

impl Policy {
    /// When a lock taken at `locked_at` expires, or `None` if only an admin lifts it.
    pub fn locked_until(&self, locked_at: OffsetDateTime) -> Option<OffsetDateTime> {
        self.lock.map(|lock| locked_at + lock)
    }

    /// `state` as it stands at `now`: an expired lock is gone, and its count with it.
    pub fn effective(&self, state: State, now: OffsetDateTime) -> State {
        match state.locked_at.and_then(|at| self.locked_until(at)) {
            Some(until) if until <= now => State { attempts: 0, locked_at: None },
            _ => state,
        }
    }

    /// The detail of a `restore-locked` answer.
    pub fn locked_detail(&self, locked_at: Option<OffsetDateTime>) -> String {
        let until = locked_at.and_then(|at| self.locked_until(at)).and_then(|until| until.format(&Rfc3339).ok());
        match until {
            Some(until) => format!(
                "too many restore attempts without a valid proof: the account is locked until {until}, or until an admin unlocks it"
            ),
            None => "too many restore attempts without a valid proof: the account is locked until an admin unlocks it"
                .to_owned(),
        }
    }
}

/// One evaluation at `now`: `Ok(next state)` when it may be answered (the count is one higher),
/// `Err` when the account is locked, or is locked now because `max_attempts` evaluations went
/// unproven. The last evaluation allowed does not lock by itself: its proof (the right
/// passphrase after nine wrong ones) still resets the count.
pub fn decide(stored: State, now: OffsetDateTime, policy: &Policy) -> Result<State, Refusal> {
    let state = policy.effective(stored, now);
    if state.locked_at.is_some() {
        return Err(Refusal { state, changed: state != stored });
    }
    if state.attempts >= policy.max_attempts {
        return Err(Refusal { state: State { attempts: state.attempts, locked_at: Some(now) }, changed: true });
    }
    Ok(State { attempts: state.attempts + 1, locked_at: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-12-07 12:00:00 UTC);

    fn fresh() -> State {
        State { attempts: 0, locked_at: None }
    }

    #[test]
    fn ten_evaluations_are_answered_and_the_eleventh_locks() {
        let policy = Policy { max_attempts: 10, lock: None };
        let mut state = fresh();
        for n in 1..=10 {
            state = decide(state, NOW, &policy).expect("answered");
            assert_eq!(state, State { attempts: n, locked_at: None });
        }
        let refusal = decide(state, NOW, &policy).expect_err("the eleventh is refused");
        let locked = State { attempts: 10, locked_at: Some(NOW) };
        assert_eq!(refusal, Refusal { state: locked, changed: true });
        let later = decide(locked, NOW + Duration::from_secs(86_400 * 365), &policy).expect_err("still locked");
        assert_eq!(later, Refusal { state: locked, changed: false });
        assert!(policy.locked_detail(locked.locked_at).contains("until an admin unlocks it"));
    }

    #[test]
    fn a_lock_with_an_expiry_ends_by_itself_and_its_count_with_it() {
        let policy = Policy { max_attempts: 2, lock: Some(Duration::from_secs(60)) };
        let locked = State { attempts: 2, locked_at: Some(NOW) };
        assert!(decide(locked, NOW + Duration::from_secs(59), &policy).is_err());
        assert!(policy.locked_detail(locked.locked_at).contains("2026-12-07T12:01:00Z"));
        let later = NOW + Duration::from_secs(60);
        assert_eq!(decide(locked, later, &policy), Ok(State { attempts: 1, locked_at: None }));
        assert_eq!(policy.effective(locked, later), fresh());
    }

    #[test]
    fn a_count_already_at_a_lowered_limit_locks_without_an_answer() {
        let policy = Policy { max_attempts: 3, lock: None };
        let refusal = decide(State { attempts: 5, locked_at: None }, NOW, &policy).expect_err("locked");
        assert_eq!(refusal, Refusal { state: State { attempts: 5, locked_at: Some(NOW) }, changed: true });
    }
}
