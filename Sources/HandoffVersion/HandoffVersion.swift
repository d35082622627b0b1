// Handoff — the version of this build, reported by `--version`, the Ping
// reply and the logs, so a bug report says what it was seen on.

/// The release and the commit these binaries were built from.
public enum HandoffVersion {
    /// The release, as in the Python client's package (clients/python/pyproject.toml).
    public static let release = "0.1.0"
    /// `git describe --always --dirty` of the tree that was built, or
    /// "unknown" when it was built outside a git checkout.
    public static let commit = buildCommit
    /// `0.1.0 (commit 14338a1c0ffe)`.
    public static var description: String { "\(release) (commit \(commit))" }
}
