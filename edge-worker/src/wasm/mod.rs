//! The Workers glue: `#[event(fetch)]` (tracker routes) and `#[event(queue)]` (the
//! consumer that ships Arrow batches). Only built for wasm32.
//!
//! Per isolate, in a thread-local (an isolate runs one request at a time on one
//! thread): the configuration, the ingest-core pipeline (parser buffers, user-agent
//! cache), the GCRA limiter, the daily salt, the quota book, and the direct-mode buffer.

mod consumer;
mod direct;
mod fetch;
mod sink;

use std::cell::RefCell;
use std::rc::Rc;

use ingest_core::{DailySalt, Limits, Pipeline, PipelineConfig, RateLimiter};
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

/// Runs `f` on this isolate's state, creating it from `env` on first use.
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
                    limits: Limits {
                        max_body_bytes: config.max_body_bytes,
                        ..Limits::default()
                    },
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
