//! The Workers glue: `#[event(fetch)]` (tracker routes) and `#[event(queue)]` (the
//! consumer that ships Arrow batches). Only built for wasm32.
//!
//! Per isolate, in a thread-local: the configuration, the ingest-core pipeline (parser
//! buffers, user-agent cache), the GCRA limiter, the daily salt, the quota book, and the
//! direct-mode buffer. An isolate runs on one thread, but it may interleave several
//! requests (and queue deliveries): while one waits on I/O (reading the body, the Queue
//! send, the Rate Limiting binding, a sink post), another runs. So the state is only
//! ever borrowed inside synchronous closures ([`with_isolate`], the direct-mode buffer)
//! that never await: a `RefCell` borrow held across an `.await` would make the next
//! request's borrow panic. What a request reads before an await and acts on after it
//! may have changed in between; the one case is the quota, decided before the Queue
//! send and counted after it ([`crate::quota::QuotaBook`] allows for that: two
//! interleaved requests may both be accepted just under a site's limit).

mod consumer;
mod direct;
mod fetch;
mod sink;

use std::cell::RefCell;
use std::rc::Rc;

use ingest_core::{DailySalt, Pipeline, PipelineConfig, RateLimiter};
use worker::Env;

use crate::config::EdgeConfig;
use crate::quota::QuotaBook;

/// What an isolate keeps between requests.
struct Isolate {
    config: Rc<EdgeConfig>,
    pipeline: Pipeline,
    limiter: RateLimiter,
    salt: Option<DailySalt>,
    quota: QuotaBook,
}

impl Isolate {
    /// Makes `self.salt` the salt of `now_ms`'s UTC day, derived again only when the
    /// day changes (HMAC per day, not per request).
    fn refresh_salt(&mut self, now_ms: i64) {
        if !self.salt.as_ref().is_some_and(|s| s.is_for(now_ms)) {
            self.salt = Some(DailySalt::derive(
                self.config.salt_secret.as_bytes(),
                now_ms,
            ));
        }
    }
}

thread_local! {
    static ISOLATE: RefCell<Option<Isolate>> = const { RefCell::new(None) };
}

/// Runs `f` on this isolate's state, creating it from `env` on first use. `f` is
/// synchronous on purpose: the borrow ends before the caller's next `.await`, so
/// interleaved requests never find the state borrowed. Never call it from inside `f`.
fn with_isolate<R>(
    env: &Env,
    f: impl FnOnce(&mut Isolate) -> R,
) -> Result<R, crate::config::ConfigError> {
    ISOLATE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let config = read_config(env)?;
            *slot = Some(Isolate {
                pipeline: Pipeline::new(PipelineConfig {
                    limits: config.limits.clone(),
                    ..PipelineConfig::default()
                }),
                limiter: RateLimiter::new(config.rate_limit.clone()),
                salt: None,
                quota: QuotaBook::new(),
                config: Rc::new(config),
            });
        }
        Ok(f(slot.as_mut().expect("set just above")))
    })
}

/// The configuration from wrangler vars and secrets (both are strings in `env`).
fn read_config(env: &Env) -> Result<EdgeConfig, crate::config::ConfigError> {
    EdgeConfig::from_vars(|name| {
        env.var(name)
            .map(|v| v.to_string())
            .or_else(|_| env.secret(name).map(|v| v.to_string()))
            .ok()
    })
}

/// The time, Unix ms (the Workers clock; it advances on I/O, which is all we need).
fn now_ms() -> i64 {
    worker::Date::now().as_millis() as i64
}

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// `crypto.getRandomValues`: the per-request seed of the event ids.
    #[wasm_bindgen(js_namespace = crypto, js_name = getRandomValues)]
    fn get_random_values(buf: &mut [u8]);
}

/// 16 random bytes from the Workers CSPRNG.
fn random_seed() -> [u8; 16] {
    let mut seed = [0u8; 16];
    get_random_values(&mut seed);
    seed
}
