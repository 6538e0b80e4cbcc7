//! Single flight: concurrent requests for the same key wait for one call and share its
//! result, so that a burst of identical logins (Outlook opens several connections at start)
//! costs one bind, and a burst of misses on one mailbox one search.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use tokio::sync::watch;

/// The calls in progress, by key.
pub struct Flights<K, V> {
    in_flight: Mutex<HashMap<K, watch::Receiver<Option<V>>>>,
}

/// What [`Flights::join`] made of a caller.
pub enum Role<'a, K: Eq + Hash + Clone, V> {
    /// Nobody is asking yet: make the call and [`Lead::finish`] with its result.
    Leader(Lead<'a, K, V>),
    /// Someone is: wait with [`Follow::result`].
    Follower(Follow<V>),
}

/// The one caller that makes the call. Dropped without finishing (its request went away),
/// it hands the key back and the waiting callers try again.
pub struct Lead<'a, K: Eq + Hash + Clone, V> {
    flights: &'a Flights<K, V>,
    key: K,
    sender: watch::Sender<Option<V>>,
}

/// A caller waiting for the leader's result.
pub struct Follow<V>(watch::Receiver<Option<V>>);

impl<K: Eq + Hash + Clone, V: Clone> Flights<K, V> {
    /// No calls in progress.
    pub fn new() -> Flights<K, V> {
        Flights {
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// Leads the call for `key`, or follows the one in progress.
    pub fn join(&self, key: K) -> Role<'_, K, V> {
        let Ok(mut map) = self.in_flight.lock() else {
            // A poisoned map only costs the sharing: every caller makes its own call.
            let (sender, _) = watch::channel(None);
            return Role::Leader(Lead {
                flights: self,
                key,
                sender,
            });
        };
        if let Some(receiver) = map.get(&key) {
            return Role::Follower(Follow(receiver.clone()));
        }
        let (sender, receiver) = watch::channel(None);
        map.insert(key.clone(), receiver);
        Role::Leader(Lead {
            flights: self,
            key,
            sender,
        })
    }

    /// Calls in progress (for tests and bounds).
    pub fn len(&self) -> usize {
        self.in_flight.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// True when no call is in progress.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Default for Flights<K, V> {
    fn default() -> Self {
        Flights::new()
    }
}

impl<K: Eq + Hash + Clone, V> Lead<'_, K, V> {
    /// Gives the result to every follower (and to those that join before the key is
    /// handed back).
    pub fn finish(self, value: V) {
        self.sender.send_replace(Some(value));
    }
}

impl<K: Eq + Hash + Clone, V> Drop for Lead<'_, K, V> {
    fn drop(&mut self) {
        if let Ok(mut map) = self.flights.in_flight.lock() {
            map.remove(&self.key);
        }
    }
}

impl<V: Clone> Follow<V> {
    /// The leader's result; `None` when the leader went away without one (join again).
    pub async fn result(mut self) -> Option<V> {
        let value = self.0.wait_for(Option::is_some).await.ok()?;
        value.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_share_the_leaders_result_and_the_key_is_handed_back() {
        let flights: Flights<&str, u32> = Flights::new();
        let Role::Leader(lead) = flights.join("k") else {
            panic!("the first caller leads")
        };
        let Role::Follower(first) = flights.join("k") else {
            panic!("the second follows")
        };
        let Role::Leader(other) = flights.join("other") else {
            panic!("another key has its own flight")
        };
        drop(other);
        let waiting = tokio::spawn(first.result());
        tokio::task::yield_now().await;
        lead.finish(7);
        assert_eq!(waiting.await.unwrap(), Some(7));
        assert!(flights.is_empty());
        assert!(matches!(flights.join("k"), Role::Leader(_)));
    }

    #[tokio::test]
    async fn a_leader_that_goes_away_lets_the_followers_try_again() {
        let flights: Flights<&str, u32> = Flights::new();
        let Role::Leader(lead) = flights.join("k") else {
            panic!("the first caller leads")
        };
        let Role::Follower(follower) = flights.join("k") else {
            panic!("the second follows")
        };
        drop(lead);
        assert_eq!(follower.result().await, None);
        assert!(matches!(flights.join("k"), Role::Leader(_)));
    }
}
