// Handoff — page sizes of the List methods (ListEvents, ListQueue,
// ListPendingApprovals), read as common.proto's "Paging" says.

import Crypto
import Foundation
import HandoffCore
import HandoffRPC

/// A List request's `page_size` as the protocol defines it (common.proto,
/// "Paging"): 0 is the default of 50, more than `maximum` is lowered to it,
/// negative is INVALID_ARGUMENT.
func pageLimit(_ pageSize: Int32, maximum: Int = 500) throws(RPCError) -> Int {
    guard pageSize >= 0 else {
        throw RPCError(code: .invalidArgument, message: "page_size must not be negative, not \(pageSize)")
    }
    return pageSize == 0 ? min(50, maximum) : min(Int(pageSize), maximum)
}

/// The refusal of a page token this server did not issue (or that is out of range).
private let foreignToken = RPCError(code: .invalidArgument, message: "page_token is not one this server issued")

/// The opaque page token of ListQueue: how many tickets the previous pages
/// held, at most `maximumOffset` (a token past it is refused, so no arithmetic
/// on it can overflow).
enum QueuePageToken {
    static let maximumOffset = 10_000_000

    static func encode(_ offset: Int) -> String { Data("q:\(offset)".utf8).base64EncodedString() }

    static func decode(_ token: String) throws(RPCError) -> Int {
        guard token.utf8.count <= 64, let data = Data(base64Encoded: token), let text = String(data: data, encoding: .utf8),
            text.hasPrefix("q:"), let offset = Int(text.dropFirst(2)), (0...maximumOffset).contains(offset)
        else { throw foreignToken }
        return offset
    }
}

/// The opaque page token of ListPendingApprovals: the last approval listed
/// (`a:DUE:CREATED:ID`), a keyset cursor, so that approvals decided or added
/// meanwhile neither shift nor repeat the next page.
enum ApprovalPageToken {
    static func encode(_ cursor: ApprovalCursor) -> String {
        Data("a:\(cursor.dueAtMs):\(cursor.createdAtMs):\(cursor.id)".utf8).base64EncodedString()
    }

    static func decode(_ token: String) throws(RPCError) -> ApprovalCursor {
        guard token.utf8.count <= 512, let data = Data(base64Encoded: token), let text = String(data: data, encoding: .utf8),
            text.hasPrefix("a:")
        else { throw foreignToken }
        let parts = text.dropFirst(2).split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, let due = Int64(parts[0]), due >= 0, let created = Int64(parts[1]), created >= 0, !parts[2].isEmpty
        else { throw foreignToken }
        return ApprovalCursor(dueAtMs: due, createdAtMs: created, id: String(parts[2]))
    }
}

/// The opaque resume cursor of Operators/Watch: a feed position sealed with
/// AES-GCM under a key derived from the server key, bound to its tenant. The
/// store's positions count every tenant's events, so they are never shown
/// in clear; a cursor stays good across restarts and on any server with the
/// same key, and one altered, forged or from another tenant is refused.
struct FeedCursorToken: Sendable {
    private let key: [UInt8]

    init(key: [UInt8]) {
        self.key = key
    }

    func encode(_ position: Int64, tenant: TenantID) -> String {
        var bytes = withUnsafeBytes(of: position.bigEndian) { Array($0) }
        bytes.insert(1, at: 0)  // the format's version
        guard let sealed = try? AES.GCM.seal(bytes, using: SymmetricKey(data: key), authenticating: Data(tenant.rawValue.utf8)),
            let combined = sealed.combined
        else { return "" }
        return combined.base64EncodedString()
    }

    func decode(_ token: String, tenant: TenantID) throws(RPCError) -> Int64 {
        let refusal = RPCError(code: .invalidArgument, message: "resume_cursor is not one this server issued to this tenant")
        guard token.utf8.count <= 128, let data = Data(base64Encoded: token),
            let box = try? AES.GCM.SealedBox(combined: data),
            let opened = try? AES.GCM.open(box, using: SymmetricKey(data: key), authenticating: Data(tenant.rawValue.utf8)),
            opened.count == 9, opened.first == 1
        else { throw refusal }
        let position = opened.dropFirst().reduce(Int64(0)) { $0 << 8 | Int64($1) }
        guard position >= 0 else { throw refusal }
        return position
    }
}
