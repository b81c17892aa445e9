//! The flags' defaults, bounds and parsers.

use super::*;

#[test]
fn durations_and_sizes() {
    assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert!(parse_duration("1 fortnight").is_err());
    assert_eq!(parse_bytes("16MiB"), Ok(16 << 20));
    assert_eq!(parse_bytes("100"), Ok(100));
    assert!(parse_bytes("-1").is_err());
    assert!(parse_bytes("99999999999999TiB").is_err());
}

#[test]
fn defaults_match_the_documented_table() {
    let cli = Cli::try_parse_from(["sink-clickhouse"]).unwrap();
    let s = cli.serve;
    assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(s.data_dir, PathBuf::from("./data"));
    assert!(s.clickhouse.clickhouse_url.is_empty());
    assert_eq!(s.clickhouse.clickhouse_database, "analytics");
    assert_eq!(s.clickhouse.clickhouse_table, "events");
    assert_eq!(s.clickhouse.clickhouse_user, "default");
    assert_eq!(s.clickhouse.clickhouse_compression, WireCompression::Auto);
    assert_eq!(s.clickhouse.clickhouse_block_rows, 131_072);
    assert!(s.clickhouse.clickhouse_sort_inserts);
    assert_eq!((s.flush_rows, s.flush_bytes), (100_000, 64 << 20));
    assert_eq!(s.spool_compress_above, 256 << 20);
    assert_eq!(s.spool_recycle, 2);
    assert_eq!(s.insert_rows, DEFAULT_INSERT_ROWS);
    assert_eq!(s.flush_interval, Duration::from_secs(1));
    assert_eq!(s.flush_idle, Duration::from_millis(25));
    assert_eq!(s.flush_idle_rows, 10_000);
    assert_eq!(s.load_concurrency, 2);
    assert_eq!(s.spool_max_bytes, 10 << 30);
    assert_eq!(
        (s.max_url_bytes, s.max_header_bytes, s.max_headers),
        (
            crate::server::head::DEFAULT_MAX_URL_BYTES,
            crate::server::head::DEFAULT_MAX_HEADER_BYTES,
            crate::server::head::DEFAULT_MAX_HEADERS
        )
    );
    assert!(s.batch_token.is_none() && s.sites.is_none() && s.trusted_proxy.is_empty());
}

#[test]
fn subcommands_and_repeated_urls() {
    let cli = Cli::try_parse_from([
        "sink-clickhouse",
        "migrate",
        "--clickhouse-url",
        "http://a:8123",
        "--clickhouse-url",
        "http://b:8123,http://c:8123",
    ])
    .unwrap();
    let Some(Command::Migrate(m)) = cli.command else {
        panic!("migrate expected")
    };
    assert_eq!(m.clickhouse.clickhouse_url.len(), 3);
    let cli = Cli::try_parse_from([
        "sink-clickhouse",
        "serve",
        "--trusted-proxy",
        "10.0.0.0/8,::1/128",
    ])
    .unwrap();
    let Some(Command::Serve(s)) = cli.command else {
        panic!("serve expected")
    };
    assert_eq!(s.trusted_proxy.len(), 2);
    let cli = Cli::try_parse_from([
        "sink-clickhouse",
        "serve",
        "--clickhouse-compression",
        "none",
    ])
    .unwrap();
    let Some(Command::Serve(s)) = cli.command else {
        panic!("serve expected")
    };
    assert_eq!(s.clickhouse.clickhouse_compression, WireCompression::None);
    assert!(Cli::try_parse_from([
        "sink-clickhouse",
        "serve",
        "--clickhouse-compression",
        "zstd"
    ])
    .is_err());
}

/// The ClickHouse flags of `serve --<flag> <value>`.
fn clickhouse_with(flag: &str, value: &str) -> Result<ClickHouseArgs, clap::Error> {
    let cli = Cli::try_parse_from(["sink-clickhouse", "serve", flag, value])?;
    match cli.command {
        Some(Command::Serve(s)) => Ok(s.clickhouse),
        _ => panic!("serve expected"),
    }
}

#[test]
fn sort_inserts_takes_true_or_false_and_nothing_else() {
    let serve = |v: &str| {
        clickhouse_with("--clickhouse-sort-inserts", v).map(|c| c.clickhouse_sort_inserts)
    };
    assert!(!serve("false").unwrap());
    assert!(serve("true").unwrap());
    assert!(serve("sometimes").is_err());
}

/// Seal limits of zero (a segment, and an insert, for every group-commit round) are
/// refused at start-up, naming the flag.
#[test]
fn segment_seal_limits_refuse_zero() {
    let serve = |flag: &str, value: &str| -> Result<(u64, u64, Duration), clap::Error> {
        let cli = Cli::try_parse_from(["sink-clickhouse", "serve", flag, value])?;
        match cli.command {
            Some(Command::Serve(s)) => Ok((s.flush_rows, s.flush_bytes, s.flush_interval)),
            _ => panic!("serve expected"),
        }
    };
    let (rows, bytes, age) = serve("--flush-rows", "1").unwrap();
    assert_eq!((rows, bytes, age), (1, 64 << 20, Duration::from_secs(1)));
    assert_eq!(serve("--flush-bytes", "1MiB").unwrap().1, 1 << 20);
    assert_eq!(
        serve("--flush-interval", "1ms").unwrap().2,
        Duration::from_millis(1)
    );
    for (flag, bad) in [
        ("--flush-rows", "0"),
        ("--flush-bytes", "0"),
        ("--flush-bytes", "1023KiB"),
        ("--flush-interval", "0s"),
        ("--flush-interval", "0ms"),
    ] {
        let e = serve(flag, bad).unwrap_err().to_string();
        assert!(e.contains(flag), "{flag} {bad}: {e}");
    }
}

/// The request-head limits are taken from 1KiB up to their ceilings (which fit
/// hyper's read buffer together), the header count from 32 to 99 (under hyper's
/// 100), and refused outside, naming the flag.
#[test]
fn head_limits_are_taken_within_their_bounds_and_refused_outside() {
    let serve = |flag: &str, value: &str| -> Result<(usize, usize, usize), clap::Error> {
        let cli = Cli::try_parse_from(["sink-clickhouse", "serve", flag, value])?;
        match cli.command {
            Some(Command::Serve(s)) => Ok((s.max_url_bytes, s.max_header_bytes, s.max_headers)),
            _ => panic!("serve expected"),
        }
    };
    assert_eq!(serve("--max-headers", "32").unwrap().2, 32);
    assert_eq!(serve("--max-headers", "99").unwrap().2, 99);
    assert_eq!(serve("--max-url-bytes", "1KiB").unwrap().0, 1024);
    assert_eq!(serve("--max-url-bytes", "24KiB").unwrap().0, 24 << 10);
    assert_eq!(serve("--max-header-bytes", "1024").unwrap().1, 1024);
    assert_eq!(serve("--max-header-bytes", "32KiB").unwrap().1, 32 << 10);
    for (flag, bad) in [
        ("--max-url-bytes", "0"),
        ("--max-url-bytes", "1023"),
        ("--max-url-bytes", "24577"),
        ("--max-url-bytes", "64KiB"),
        ("--max-header-bytes", "1023"),
        ("--max-header-bytes", "32769"),
        ("--max-header-bytes", "lots"),
        ("--max-headers", "31"),
        ("--max-headers", "100"),
        ("--max-headers", "0"),
        ("--max-headers", "64KiB"),
    ] {
        let e = serve(flag, bad).unwrap_err().to_string();
        assert!(e.contains(flag), "{flag} {bad}: {e}");
    }
}

#[test]
fn block_rows_are_taken_within_their_bounds_and_refused_outside() {
    let serve =
        |v: &str| clickhouse_with("--clickhouse-block-rows", v).map(|c| c.clickhouse_block_rows);
    assert_eq!(serve("16384").unwrap(), 16_384);
    assert_eq!(serve("1024").unwrap(), crate::clickhouse::MIN_BLOCK_ROWS);
    assert_eq!(serve("1048576").unwrap(), crate::clickhouse::MAX_BLOCK_ROWS);
    for bad in ["0", "1023", "1048577", "many"] {
        let e = serve(bad).unwrap_err().to_string();
        assert!(e.contains("--clickhouse-block-rows"), "{bad}: {e}");
    }
}

/// The IPC decode limits default to ingest-core's documented constants, are taken
/// at their bounds and refused one past them, naming the flag.
#[test]
fn ipc_decode_limits_default_to_ingest_core_and_keep_their_bounds() {
    let serve = |args: &[&str]| -> Result<(usize, usize), clap::Error> {
        let cli = Cli::try_parse_from([&["sink-clickhouse", "serve"], args].concat())?;
        match cli.command {
            Some(Command::Serve(s)) => Ok((s.max_ipc_expansion, s.min_ipc_decoded_bytes)),
            _ => panic!("serve expected"),
        }
    };
    assert_eq!(
        serve(&[]).unwrap(),
        (ingest_core::MAX_IPC_EXPANSION, ingest_core::MIN_IPC_DECODED)
    );
    assert_eq!(serve(&["--max-ipc-expansion", "1"]).unwrap().0, 1);
    assert_eq!(serve(&["--max-ipc-expansion", "255"]).unwrap().0, 255);
    assert_eq!(serve(&["--min-ipc-decoded-bytes", "0"]).unwrap().1, 0);
    assert_eq!(
        serve(&["--min-ipc-decoded-bytes", "1GiB"]).unwrap().1,
        1 << 30
    );
    for (flag, bad) in [
        ("--max-ipc-expansion", "0"),
        ("--max-ipc-expansion", "256"),
        ("--max-ipc-expansion", "many"),
        ("--min-ipc-decoded-bytes", "1073741825"),
        ("--min-ipc-decoded-bytes", "lots"),
    ] {
        let e = serve(&[flag, bad]).unwrap_err().to_string();
        assert!(e.contains(flag), "{flag} {bad}: {e}");
    }
}
