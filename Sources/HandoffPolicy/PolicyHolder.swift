// Handoff — the policy in force, read from its file and swapped whole on
// reload (SIGHUP, Admin/ReloadPolicy), so no call sees half of one.

import Crypto
import Foundation
import Synchronization

/// The policy in force, swapped whole on reload so no call sees half of one.
public final class PolicyHolder: Sendable {
    public struct Loaded: Sendable {
        public var policy: Policy
        /// SHA-256 of the file's bytes (of the shipped text when no file).
        public var hash: [UInt8]
        public var loadedAtMs: Int64
    }

    /// The file it reloads from; nil: the shipped policy, which never changes.
    public let path: String?
    private let state: Mutex<Loaded>

    /// Loads `path` (or the shipped policy); a bad file is refused with line and reason.
    public init(path: String?) throws(PolicyError) {
        self.path = path
        state = Mutex(try Self.load(path))
    }

    public var current: Loaded { state.withLock { $0 } }

    /// Reads the file again. A bad file throws and leaves the policy in force;
    /// `apply: false` only checks it.
    @discardableResult
    public func reload(apply: Bool = true) throws(PolicyError) -> Loaded {
        let loaded = try Self.load(path)
        if apply { state.withLock { $0 = loaded } }
        return loaded
    }

    private static func load(_ path: String?) throws(PolicyError) -> Loaded {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        guard let path else {
            return Loaded(policy: .standard, hash: Array(SHA256.hash(data: Data(Policy.standardYAML.utf8))), loadedAtMs: now)
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw PolicyError(message: "cannot read policy file \(path): \(error.localizedDescription)")
        }
        let policy = try Policy(yaml: String(decoding: data, as: UTF8.self), source: path)
        return Loaded(policy: policy, hash: Array(SHA256.hash(data: data)), loadedAtMs: now)
    }
}
