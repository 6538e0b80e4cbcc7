//! The failed-login counters in Valkey or Redis (`[throttle.shared]`), so that instances
//! sharing the store act as one server: every change is one script, run atomically by the
//! store, with the store's clock (the instances' clocks need not agree). The rules are the
//! ones of [`crate::auth::throttle`] (`decayed_score`, `judge`), written again in Lua
//! because they must run inside the store to be atomic; `tests/it/shared_throttle.rs`
//! checks against a real redis-server that both give the same answers.

use std::net::IpAddr;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Script, ScriptInvocation};

use crate::auth::throttle::{account_key, LedgerRule, Scores, Settled, PENDING_EXPIRY_MS};
use crate::config::SharedStore;

/// Why the store could not be used; the caller then counts locally.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("shared throttle store: {0}")]
    Unreachable(String),
    #[error("shared throttle store did not answer within {0} ms")]
    Timeout(u64),
    #[error("shared throttle store: unexpected reply: {0}")]
    BadReply(String),
}

/// The current time in ms, from the store's clock. Redis before 7 must be told to replicate
/// a script's effects rather than the script once it has read the clock.
const NOW: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
";

/// A decayed score (`decayed_score`): linear, gone one window after the last failure.
const SCORE: &str = r"
local function score(key, w)
  local h = redis.call('HMGET', key, 'v', 't')
  if not h[1] then return 0 end
  local v = tonumber(h[1])
  local e = now - tonumber(h[2])
  if e < 0 then e = 0 end
  local r = v - e / w * math.max(v, 1)
  if r < 0 then r = 0 end
  return r
end
";

/// KEYS: source, pair, account, wrong passwords of the login. ARGV: window ms, digest or ''.
/// → {source, pair, account (as text: floats), known wrong 0/1, anything to clear 0/1}.
const CHECK: &str = r"
local w = tonumber(ARGV[1])
local wrong = 0
if ARGV[2] ~= '' then
  local at = redis.call('HGET', KEYS[4], ARGV[2])
  if at and now - tonumber(at) < w then wrong = 1 end
end
local pair = score(KEYS[2], w)
local dirty = 0
if pair > 0 or redis.call('EXISTS', KEYS[4]) == 1 then dirty = 1 end
return {tostring(score(KEYS[1], w)), tostring(pair), tostring(score(KEYS[3], w)), wrong, dirty}
";

/// KEYS as CHECK. ARGV: window ms, digest or '', digests kept per login.
const FAILED: &str = r"
local w = tonumber(ARGV[1])
for i = 1, 3 do
  local v = score(KEYS[i], w) + 1
  redis.call('HSET', KEYS[i], 'v', tostring(v), 't', now)
  redis.call('PEXPIRE', KEYS[i], w)
end
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[4], ARGV[2], now)
  if redis.call('HLEN', KEYS[4]) > tonumber(ARGV[3]) then
    local all = redis.call('HGETALL', KEYS[4])
    local oldest, at = nil, nil
    for i = 1, #all, 2 do
      local t = tonumber(all[i + 1])
      if at == nil or t < at then oldest, at = all[i], t end
    end
    redis.call('HDEL', KEYS[4], oldest)
  end
  redis.call('PEXPIRE', KEYS[4], w)
end
return 1
";

/// KEYS: pair, wrong passwords of the login.
const SUCCEEDED: &str = r"
redis.call('DEL', KEYS[1], KEYS[2])
return 1
";

/// KEYS: the account's ledger, its familiarity with this source. ARGV: budget, reserve,
/// window ms, the domain's bad-password count (-1: not read), its retry ms, pending expiry.
/// → {1, 0} admitted, {0, retry ms} refused (`judge`).
const ADMIT: &str = r"
local budget, reserve, w = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local dbad, dretry, pexp = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local h = redis.call('HMGET', KEYS[1], 'f', 'p', 't')
local f, p, last = tonumber(h[1]) or 0, tonumber(h[2]) or 0, tonumber(h[3]) or 0
if now - last >= w then f, p = 0, 0 end
if now - last >= pexp then p = 0 end
local limit = budget
if redis.call('EXISTS', KEYS[2]) == 1 then limit = budget + reserve end
if f >= limit then return {0, math.max(last + w - now, 1)} end
if dbad >= 0 and dbad + p >= limit then return {0, math.max(dretry, 1)} end
redis.call('HSET', KEYS[1], 'f', f + 1, 'p', p + 1, 't', now)
redis.call('PEXPIRE', KEYS[1], w)
return {1, 0}
";

/// KEYS as ADMIT. ARGV: 1 right, 0 wrong, -1 unchecked; familiarity ms.
const SETTLE: &str = r"
local outcome = tonumber(ARGV[1])
if outcome == 1 then
  redis.call('DEL', KEYS[1])
  if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[2], 1, 'PX', ARGV[2]) end
  return 1
end
local h = redis.call('HMGET', KEYS[1], 'f', 'p')
if not h[1] then return 0 end
local f, p = tonumber(h[1]), math.max(tonumber(h[2]) - 1, 0)
if outcome == -1 then f = math.max(f - 1, 0) end
if f == 0 then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 'f', f, 'p', p)
end
return 1
";

/// What the store said about an attempt before it is checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckReply {
    pub scores: Scores,
    /// This wrong password was seen for this login within the window.
    pub known_wrong: bool,
    /// A success has something to clear (a pair score, remembered wrong passwords).
    pub dirty: bool,
}

/// The store and its scripts.
pub struct SharedCounts {
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    check: Script,
    failed: Script,
    succeeded: Script,
    admit: Script,
    settle: Script,
}

impl SharedCounts {
    /// Prepares the client; connects lazily (a store that is down at start-up is an outage
    /// handled like any other, not a start failure).
    pub fn new(settings: &SharedStore) -> Result<SharedCounts, StoreError> {
        let unreachable = |e: redis::RedisError| StoreError::Unreachable(e.to_string());
        let mut info = redis::IntoConnectionInfo::into_connection_info(settings.url.as_str())
            .map_err(unreachable)?;
        let mut redis_info = info.redis_settings().clone();
        if let Some(user) = &settings.username {
            redis_info = redis_info.set_username(user);
        }
        if let Some(password) = &settings.password {
            redis_info = redis_info.set_password(password.expose());
        }
        info = info.set_redis_settings(redis_info);
        let client = match &settings.ca_file {
            Some(ca) => {
                let root_cert = std::fs::read(ca).map_err(|e| {
                    StoreError::Unreachable(format!("cannot read {}: {e}", ca.display()))
                })?;
                redis::Client::build_with_tls(
                    info,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(root_cert),
                    },
                )
            }
            None => redis::Client::open(info),
        }
        .map_err(unreachable)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(unreachable)?;
        Ok(SharedCounts {
            conn,
            prefix: settings.key_prefix.clone(),
            timeout: settings.timeout,
            check: Script::new(&[NOW, SCORE, CHECK].concat()),
            failed: Script::new(&[NOW, SCORE, FAILED].concat()),
            succeeded: Script::new(SUCCEEDED),
            admit: Script::new(&[NOW, ADMIT].concat()),
            settle: Script::new(SETTLE),
        })
    }

    fn keys(&self, source: IpAddr, account: &str) -> [String; 4] {
        let p = &self.prefix;
        let account = account_key(account);
        [
            format!("{p}s:{source}"),
            format!("{p}p:{source} {account}"),
            format!("{p}a:{account}"),
            format!("{p}w:{account}"),
        ]
    }

    fn ledger_keys(&self, ledger_key: &str, source: IpAddr) -> [String; 2] {
        let p = &self.prefix;
        [
            format!("{p}l:{ledger_key}"),
            format!("{p}f:{source} {ledger_key}"),
        ]
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        let ms = self.timeout.as_millis() as u64;
        let call = async {
            match invocation.invoke_async(&mut conn).await {
                // A connection that broke (the store restarted) is replaced by the manager
                // when the failure is seen: one more try uses the new one.
                Err(e) if e.is_io_error() || e.is_connection_dropped() => {
                    invocation.invoke_async(&mut conn).await
                }
                other => other,
            }
        };
        // The manager's own response timeout covers one attempt; this bounds the whole
        // call, reconnection included.
        match tokio::time::timeout(self.timeout * 2, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) if e.is_timeout() => Err(StoreError::Timeout(ms)),
            Ok(Err(e)) => Err(StoreError::Unreachable(e.to_string())),
            Err(_) => Err(StoreError::Timeout(ms)),
        }
    }

    /// The scores an attempt of `account` (the login as typed) from `source` is judged by,
    /// and whether `digest` is a wrong password seen for it within the window.
    pub async fn check(
        &self,
        source: IpAddr,
        account: &str,
        digest: Option<&[u8; 32]>,
        window_ms: u64,
    ) -> Result<CheckReply, StoreError> {
        let mut inv = self.check.prepare_invoke();
        for key in self.keys(source, account) {
            inv.key(key);
        }
        inv.arg(window_ms).arg(digest.map(hex).unwrap_or_default());
        let (source_score, pair, account_score, wrong, dirty): (String, String, String, i64, i64) =
            self.run(&inv).await?;
        let number = |text: &str| {
            text.parse::<f64>()
                .map_err(|_| StoreError::BadReply(format!("score `{text}`")))
        };
        Ok(CheckReply {
            scores: Scores {
                source: number(&source_score)?,
                pair: number(&pair)?,
                account: number(&account_score)?,
            },
            known_wrong: wrong == 1,
            dirty: dirty == 1,
        })
    }

    /// Records a failed attempt (and its wrong password's digest).
    pub async fn failed(
        &self,
        source: IpAddr,
        account: &str,
        digest: Option<&[u8; 32]>,
        window_ms: u64,
        digests_kept: usize,
    ) -> Result<(), StoreError> {
        let mut inv = self.failed.prepare_invoke();
        for key in self.keys(source, account) {
            inv.key(key);
        }
        inv.arg(window_ms)
            .arg(digest.map(hex).unwrap_or_default())
            .arg(digests_kept);
        self.run::<i64>(&inv).await.map(drop)
    }

    /// Records a successful login: the source's record against the account and the
    /// account's remembered wrong passwords go.
    pub async fn succeeded(&self, source: IpAddr, account: &str) -> Result<(), StoreError> {
        let [_, pair, _, wrong] = self.keys(source, account);
        let mut inv = self.succeeded.prepare_invoke();
        inv.key(pair).key(wrong);
        self.run::<i64>(&inv).await.map(drop)
    }

    /// Admits a password check of the directory account `ledger_key` from `source`
    /// (`judge`): `Ok(Err(retry_after))` when refused.
    pub async fn admit(
        &self,
        ledger_key: &str,
        source: IpAddr,
        rule: &LedgerRule,
    ) -> Result<Result<(), Duration>, StoreError> {
        let mut inv = self.admit.prepare_invoke();
        for key in self.ledger_keys(ledger_key, source) {
            inv.key(key);
        }
        let (bad, retry) = match rule.domain {
            Some(d) => (i64::from(d.bad_passwords), d.retry_after_ms),
            None => (-1, 0),
        };
        inv.arg(rule.budget)
            .arg(rule.reserve)
            .arg(rule.window_ms)
            .arg(bad)
            .arg(retry)
            .arg(PENDING_EXPIRY_MS);
        let (admitted, retry_ms): (i64, i64) = self.run(&inv).await?;
        Ok(if admitted == 1 {
            Ok(())
        } else {
            Err(Duration::from_millis(retry_ms.max(1).unsigned_abs()))
        })
    }

    /// The outcome of an admitted check; a right password makes `source` familiar.
    pub async fn settle(
        &self,
        ledger_key: &str,
        source: IpAddr,
        outcome: Settled,
        familiar_ms: u64,
    ) -> Result<(), StoreError> {
        let mut inv = self.settle.prepare_invoke();
        for key in self.ledger_keys(ledger_key, source) {
            inv.key(key);
        }
        let outcome: i64 = match outcome {
            Settled::Right => 1,
            Settled::Wrong => 0,
            Settled::Unchecked => -1,
        };
        inv.arg(outcome).arg(familiar_ms);
        self.run::<i64>(&inv).await.map(drop)
    }
}

fn hex(digest: &[u8; 32]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
