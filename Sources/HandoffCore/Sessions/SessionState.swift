// Handoff — changing a session's state: RFC 7386 merge patches and full
// replacements, with the rules every state must keep.

/// How an UpdateState call changes the state.
public enum StateChange: Sendable, Hashable {
    /// An RFC 7386 JSON merge patch: members set to null are removed, objects
    /// merge recursively, anything else replaces.
    case mergePatch(JSONValue)
    /// The whole new state.
    case replacement(JSONValue)
}

/// Why a state or a change to it is refused; the message names the problem.
public struct StateError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

public enum SessionState {
    /// The default largest state, in bytes of its canonical JSON.
    public static let defaultSizeLimit = 256 * 1024

    /// RFC 7386, section 2: the result of applying `patch` to `target`.
    public static func mergePatch(_ target: JSONValue, _ patch: JSONValue) -> JSONValue {
        guard case .object(let changes) = patch else { return patch }
        var result = target.objectValue ?? [:]
        for (name, value) in changes {
            if value == .null {
                result.removeValue(forKey: name)
            } else {
                result[name] = mergePatch(result[name] ?? .null, value)
            }
        }
        return .object(result)
    }

    /// The new state after `change`, checked: it must be a JSON object whose
    /// canonical encoding fits in `sizeLimit` bytes.
    /// - Returns: the new state and its canonical JSON text.
    public static func apply(
        _ change: StateChange, to current: JSONValue, sizeLimit: Int = defaultSizeLimit
    ) throws(StateError) -> (state: JSONValue, json: String) {
        let next: JSONValue
        switch change {
        case .mergePatch(let patch):
            guard case .object = patch else {
                throw StateError(message: "a merge patch must be a JSON object; it would replace the whole state with a non-object")
            }
            // The patch is kept whole in the event log: bounded like a state,
            // even when it changes nothing.
            let size = patch.serialized.utf8.count
            guard size <= sizeLimit else {
                throw StateError(message: "the merge patch is \(size) bytes; the limit is \(sizeLimit) bytes (the state size limit)")
            }
            next = mergePatch(current, patch)
        case .replacement(let state):
            next = state
        }
        return try validate(next, sizeLimit: sizeLimit)
    }

    /// Checks a whole state: an object within the size limit.
    public static func validate(_ state: JSONValue, sizeLimit: Int = defaultSizeLimit) throws(StateError) -> (state: JSONValue, json: String) {
        guard case .object = state else {
            throw StateError(message: "the state must be a JSON object, not \(kind(of: state))")
        }
        let json = state.serialized
        let size = json.utf8.count
        guard size <= sizeLimit else {
            throw StateError(message: "the state would be \(size) bytes; the limit is \(sizeLimit) bytes")
        }
        return (state, json)
    }

    private static func kind(of value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool: "a boolean"
        case .integer, .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}
