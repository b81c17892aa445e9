//! The native sink (built by the sink issue).
