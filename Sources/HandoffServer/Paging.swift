// Handoff — page sizes of the List methods (ListEvents, ListQueue,
// ListPendingApprovals), read as common.proto's "Paging" says.

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
