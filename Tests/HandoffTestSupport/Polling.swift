// Handoff — waiting for a condition in a test instead of pausing: a fixed
// pause is outlasted by a busy machine (make test runs the suites side by
// side on two cores), a polled condition with a generous deadline is not.

/// Waits until `condition` holds or `seconds` pass; the caller then checks it.
public func until(seconds: Int, _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while !condition(), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(2)) }
}
