//! The Cloudflare Worker (built by the edge-worker issue).
