/// Runs `pass` to its end even if the caller is cancelled.
///
/// For the background loops that talk to PostgreSQL through PostgresNIO (lag probes, two-phase recovery, the
/// collation lookup): a query started on a cancelled task can wait forever there. Seen: a proxy whose listen or
/// admin port was taken never exited, deaf to SIGTERM, its recovery pass or a lag probe suspended in a query
/// after startup cancelled them. Each pass is bounded by its own connect and sample timeouts; the loops around
/// it stop between passes (on cancellation, or for the lag monitor on `shutdown()`).
func uncancelled<Result: Sendable>(_ pass: @escaping @Sendable () async -> Result) async -> Result {
    await Task { await pass() }.value
}
